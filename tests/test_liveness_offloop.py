"""Liveness CPU work runs in the service's CPU pool, like verify: never on the event
loop, and never while the session row is locked."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.conftest import make_key
from tests.test_liveness_api import PHOTO, camera_frame, jpeg, new_session, post

WAIT_S = 30.0


class GatedPipeline:
    """The real face pipeline, whose ``decode`` waits for the test's go-ahead: it holds a
    request inside its CPU work for as long as the test needs to look around."""

    def __init__(self, real: Any) -> None:  # noqa: ANN401
        self._real = real
        self.entered = threading.Event()
        self.go = threading.Event()
        self.thread: str | None = None

    def decode(self, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
        self.thread = threading.current_thread().name
        self.entered.set()
        self.go.wait(WAIT_S)
        return self._real.decode(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401
        return getattr(self._real, name)


@pytest.fixture
def gated(client) -> Iterator[GatedPipeline]:  # noqa: ANN001
    runtime = client.app.state.container.liveness
    real = runtime.pipeline
    gate = GatedPipeline(real)
    runtime.pipeline = gate
    try:
        yield gate
    finally:
        gate.go.set()
        runtime.pipeline = real


def _in_thread(fn: Any) -> tuple[threading.Thread, dict[str, Any]]:  # noqa: ANN401
    out: dict[str, Any] = {}

    def run() -> None:
        out["response"] = fn()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def _loop_answers(client) -> bool:  # noqa: ANN001
    """Does the app's event loop answer a trivial request while the other one works?"""
    thread, out = _in_thread(lambda: client.get("/healthz"))
    thread.join(5.0)
    return "response" in out and out["response"].status_code == 200


def _row_lockable(db_url: str, session_id: str) -> bool:
    dsn = db_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=False) as conn:
        conn.execute("SET lock_timeout = '500ms'")
        try:
            conn.execute(
                "SELECT 1 FROM liveness_sessions WHERE id = %s FOR UPDATE", (uuid.UUID(session_id),)
            )
        except psycopg.errors.LockNotAvailable:
            return False
        return True


def test_a_frame_is_processed_off_the_loop_and_without_the_row_lock(
    client, gated: GatedPipeline, db_url: str, pipeline
) -> None:  # noqa: ANN001
    key = make_key(client, "client")
    session = new_session(client, key, ["turn_left", "turn_right"])
    data = jpeg(camera_frame(PHOTO, pipeline))
    thread, out = _in_thread(lambda: post(client, key, session["id"], data))
    assert gated.entered.wait(WAIT_S)
    try:
        assert _loop_answers(client), "the event loop is blocked by a liveness frame"
        assert _row_lockable(db_url, session["id"]), "the session row is locked during CPU work"
    finally:
        gated.go.set()
        thread.join(WAIT_S)
    assert out["response"].status_code == 200, out["response"].text
    assert out["response"].json()["frames_received"] == 1


def test_the_passive_check_is_processed_off_the_loop(
    client, gated: GatedPipeline, pipeline
) -> None:  # noqa: ANN001
    key = make_key(client, "client")
    data = jpeg(camera_frame(PHOTO, pipeline))
    thread, out = _in_thread(
        lambda: client.post(
            "/v1/liveness",
            headers={"X-API-Key": key},
            files={"image": ("p.jpg", data, "image/jpeg")},
        )
    )
    assert gated.entered.wait(WAIT_S)
    try:
        assert _loop_answers(client), "the event loop is blocked by the passive check"
    finally:
        gated.go.set()
        thread.join(WAIT_S)
    assert out["response"].status_code == 200, out["response"].text


def test_liveness_work_waits_for_the_cpu_pool(make_client, pipeline) -> None:  # noqa: ANN001
    """With the pool's one slot taken, a frame waits: it goes through the same limiter as
    verify, so liveness cannot oversubscribe the CPUs verify is sized for."""
    client = make_client(cpu_workers=1)
    key = make_key(client, "client")
    session = new_session(client, key, ["turn_left", "turn_right"])
    data = jpeg(camera_frame(PHOTO, pipeline))
    limiter = client.app.state.container.components.cpu_limiter
    holder = object()
    client.portal.call(limiter.acquire_on_behalf_of, holder)
    thread, out = _in_thread(lambda: post(client, key, session["id"], data))
    try:
        thread.join(3.0)
        assert "response" not in out, "the frame did not wait for the CPU pool"
    finally:
        client.portal.call(limiter.release_on_behalf_of, holder)
    thread.join(WAIT_S)
    assert out["response"].status_code == 200, out["response"].text
