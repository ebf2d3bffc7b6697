"""``faceprint serve`` stopped with SIGTERM (docker stop, systemd) leaves as Ctrl-C
does: the embedded PostgreSQL stops and the data dir's lock is released."""

from __future__ import annotations

import os
import signal

from service.core.datadir import served_here
from tests.test_serve_cli import data, free_port, postgres_running, start, wait_ready

__all__ = ["data"]  # the fixture, shared with test_serve_cli


def test_sigterm_stops_the_embedded_database(data) -> None:  # noqa: ANN001
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEPRINT_")}
    env["FACEPRINT_DATA_DIR"] = str(data)
    port = free_port()
    proc = start(env, port)
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        assert postgres_running(data) and served_here(data)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Application shutdown complete" in err
    assert not postgres_running(data), "SIGTERM must stop the embedded PostgreSQL"
    assert not served_here(data)
