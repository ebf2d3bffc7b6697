"""`faceprint serve --workers N` hands its worker processes the database URL (and its
password) through a 0600 file, never through their environment, where every process
that may read /proc/<pid>/environ or inherits it from them would see it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import psutil

from tests.test_serve_cli import free_port, start, stop, wait_ready

MARKER = "pw-marker-7f3a9c"


def _with_password(db_url: str) -> str:
    # The test server trusts local connections: the password is carried, not checked.
    scheme, rest = db_url.split("://", 1)
    user, at, tail = rest.partition("@")
    return f"{scheme}://{user}:{MARKER}{at}{tail}"


def test_worker_processes_do_not_get_the_password_in_their_environment(
    db_url: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEPRINT_")}
    env["FACEPRINT_DATA_DIR"] = str(data)
    env["FACEPRINT_DATABASE_URL"] = _with_password(db_url)
    port = free_port()
    proc = start(env, port, "--workers", "2")
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
        children = psutil.Process(proc.pid).children(recursive=True)
        workers = [c for c in children if "postgres" not in c.name()]
        assert len(workers) >= 2, [c.cmdline() for c in children]
        for child in workers:
            environ = child.environ()
            assert "FACEPRINT_DATABASE_URL" not in environ, child.cmdline()
            assert not any(MARKER in value for value in environ.values()), child.cmdline()
        handed = [p for p in data.rglob("*") if p.is_file() and MARKER in p.read_text("latin-1")]
        for path in handed:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    finally:
        stop(proc)
    leftover = [p for p in data.rglob("*") if p.is_file() and MARKER in p.read_text("latin-1")]
    assert not leftover, "the URL file outlives the server"


def test_the_url_file_is_read_when_no_url_is_set(tmp_path: Path) -> None:
    from service.core.settings import Settings

    path = tmp_path / "url"
    path.write_text("postgresql+psycopg://u:p@db/x\n")
    settings = Settings(data_dir=tmp_path, database_url_file=path)
    assert settings.database_url is not None and not settings.embedded
    assert settings.database_url.get_secret_value() == "postgresql+psycopg://u:p@db/x"
