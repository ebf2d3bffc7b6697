"""`faceprint serve` on the embedded default, as a new user runs it: it comes up ready,
CLI commands join its database, a second server on the same data directory is refused,
Ctrl-C leaves no PostgreSQL behind, and the next start reuses the data."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

FACEPRINT = str(Path(sys.executable).parent / "faceprint")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_running(data_dir: Path) -> bool:
    for proc in psutil.process_iter(["name", "cmdline", "status"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.info["name"] == "postgres" and str(data_dir) in cmdline:
            if proc.info["status"] != psutil.STATUS_ZOMBIE:
                return True
    return False


def start(env: dict[str, str], port: int, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [FACEPRINT, "serve", "--port", str(port), *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_ready(url: str, proc: subprocess.Popen[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"serve exited early: {proc.stderr.read() if proc.stderr else ''}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    pytest.fail("serve did not become ready")


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    return err


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FACEPRINT, *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def data() -> Iterator[Path]:
    # Outside pytest's numbered base dir, which concurrent pytest runs prune.
    root = Path(tempfile.mkdtemp(prefix="faceprint-serve-"))
    try:
        yield root / "data"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_serve_embedded_lifecycle(data: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEPRINT_")}
    env["FACEPRINT_DATA_DIR"] = str(data)
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    proc = start(env, port)
    try:
        wait_ready(url, proc)
        created = cli(env, "keys", "create", "--name", "k", "--role", "admin")
        assert created.returncode == 0, created.stderr
        key = created.stdout.strip()
        assert created.stdout.count("\n") == 1 and key.startswith("fp_")
        ok = httpx.get(url + "/v1/api-keys", headers={"X-API-Key": key})
        assert ok.status_code == 200
        wrong = httpx.get(url + "/v1/api-keys", headers={"X-API-Key": key[:-2] + "xx"})
        assert wrong.status_code == 401
        assert wrong.headers["content-type"].startswith("application/problem+json")
        second = cli(env, "serve", "--port", str(free_port()))
        assert second.returncode != 0 and "in use" in second.stderr
        assert postgres_running(data), "the CLI's exit must not stop the server's database"
    finally:
        err = stop(proc)
    assert str(data) in err and "/docs" in err and "keys create" in err
    assert not postgres_running(data), "Ctrl-C must stop the embedded PostgreSQL"

    proc = start(env, port)
    try:
        wait_ready(url, proc)
        again = httpx.get(url + "/v1/api-keys", headers={"X-API-Key": key})
        assert again.status_code == 200, "data must survive a restart"
    finally:
        stop(proc)
    assert not postgres_running(data)

    # With nothing running, a CLI command starts and stops the database itself.
    offline = cli(env, "keys", "create", "--name", "offline", "--role", "client")
    assert offline.returncode == 0, offline.stderr
    assert not postgres_running(data)


def test_serve_with_worker_processes(data: Path) -> None:
    """``--workers 2``: both processes join the one embedded database, answer over
    keep-alive connections, and Ctrl-C stops them and the database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEPRINT_")}
    env["FACEPRINT_DATA_DIR"] = str(data)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start(env, port, "--workers", "2")
    try:
        wait_ready(url, proc)
        key = cli(env, "keys", "create", "--name", "k", "--role", "admin").stdout.strip()
        with httpx.Client(base_url=url, headers={"X-API-Key": key}) as client:
            for _ in range(20):
                assert client.get("/v1/api-keys").status_code == 200
        with httpx.Client(base_url=url) as fresh:  # new connections, either process
            for _ in range(20):
                assert fresh.get("/v1/api-keys", headers={"X-API-Key": key}).status_code == 200
        # Whichever process answers a scrape, it reports the calls of both: with
        # per-process counters each scrape would see only its own process's share.
        for _ in range(6):
            scrape = httpx.get(url + "/metrics")  # a new connection each time
            assert scrape.status_code == 200
            assert listed_calls(scrape.text) == 40
    finally:
        err = stop(proc)
    assert "rate limits per process" in err
    assert not postgres_running(data), "Ctrl-C must stop the embedded PostgreSQL"


def listed_calls(exposition: str) -> float:
    """faceprint_http_requests_total for GET /v1/api-keys answered 200."""
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == "faceprint_http_requests_total"
        and sample.labels.get("method") == "GET"
        and sample.labels.get("route") == "/v1/api-keys"
        and sample.labels.get("status") == "200"
    )


def test_default_worker_count_follows_where_rate_limits_are_kept(tmp_path: Path) -> None:
    from service.cli.main import default_api_workers
    from service.core.settings import Settings

    alone = Settings(data_dir=tmp_path, redis_url=None)
    shared = Settings(data_dir=tmp_path, redis_url="redis://127.0.0.1:6379/0")
    assert default_api_workers(alone) == 1  # in-process limits: one process
    assert default_api_workers(shared) == len(os.sched_getaffinity(0))
    # An embedded engine is held by one process, whatever shares the rate limits.
    for backend in ("qdrant-edge", "milvus"):
        embedded = shared.model_copy(update={"vector_backend": backend})
        assert default_api_workers(embedded) == 1, backend
    served = shared.model_copy(
        update={"vector_backend": "milvus", "milvus_uri": "http://milvus:19530"}
    )
    assert default_api_workers(served) == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("backend", ["qdrant-edge", "milvus"])
def test_several_processes_are_refused_for_an_embedded_engine(data: Path, backend: str) -> None:
    """A second process cannot open a Qdrant Edge shard (its WAL is locked), and a second
    milvus-lite engine on one file sees the first one's collections released: refused
    before anything starts, with what to do instead."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEPRINT_")}
    env |= {"FACEPRINT_DATA_DIR": str(data), "FACEPRINT_VECTOR_BACKEND": backend}
    refused = cli(env, "serve", "--port", str(free_port()), "--workers", "2")
    assert refused.returncode == 2
    text = " ".join(refused.stderr.split())
    assert "one process only" in text and "--workers 1" in text
    assert not postgres_running(data), "nothing may start before the refusal"
