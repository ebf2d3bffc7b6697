"""``faceprint serve`` as a process, configured only through FACEPRINT_* variables, as
an operator runs it; and the pieces of the production stack that configure it."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import REPO
from tests.servers.launch import Server, free_port
from tests.servers.postgres import PgServer
from tests.servers.stores import MilvusStandalone, RedisSentinelSet, SeaweedS3

FACEPRINT = str(Path(sys.executable).with_name("faceprint"))


@dataclass
class Stack:
    """The servers one deployment uses, and the variables that point Faceprint at them."""

    pg: PgServer
    database: str
    s3: SeaweedS3
    bucket: str
    redis: RedisSentinelSet
    milvus: MilvusStandalone
    data_dir: Path

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "FACEPRINT_DATA_DIR": str(self.data_dir),
            "FACEPRINT_DATABASE_URL": self.pg.url(self.database),
            "FACEPRINT_REDIS_URL": self.redis.url,
            "FACEPRINT_VECTOR_BACKEND": "milvus",
            "FACEPRINT_MILVUS_URI": self.milvus.uri,
            **self.s3.s3.settings(self.bucket),
            # Two cores shared: one thread per call, two calls at once.
            "FACEPRINT_IDLE_INTRA_OP_THREADS": "1",
            "FACEPRINT_CPU_WORKERS": "2",
            "FACEPRINT_WEBHOOK_DISPATCHERS": "0",
            **extra,
        }


def clean_env(env: dict[str, str]) -> dict[str, str]:
    """This process's environment without any FACEPRINT_* of its own, plus ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("FACEPRINT_")}
    return {**base, **env}


def run_faceprint(*args: str, env: dict[str, str], timeout_s: float = 600) -> str:
    """Run a ``faceprint`` command with ``env`` as its only FACEPRINT_* settings; its
    stdout, or a failure with what it printed."""
    done = subprocess.run(
        [FACEPRINT, *args], env=clean_env(env), capture_output=True, text=True,
        timeout=timeout_s, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, f"faceprint {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done.stdout


class ApiProcess:
    """One ``faceprint serve`` on 127.0.0.1 and a free port, ready when /readyz is 200."""

    def __init__(self, env: dict[str, str], log: Path, *, name: str = "faceprint serve") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [FACEPRINT, "serve", "--host", "127.0.0.1", "--port", str(self.port),
                "--workers", "1"]  # fmt: skip
        self.server = Server(name, argv, log, env=clean_env(env), cwd=REPO)
        self.server.wait_until(self._ready, timeout_s=180, what="ready (/readyz 200)")

    def _ready(self) -> bool:
        return httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200

    def kill(self) -> None:
        self.server.kill()

    def stop(self) -> None:
        self.server.stop(timeout_s=20)
