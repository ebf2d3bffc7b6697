"""Webhook delivery end to end, to a real HTTP receiver on 127.0.0.1: one signed
delivery per event type (enrollment through the worker, reindex and erasure included),
verified with the reference ``standardwebhooks`` package; retries while the receiver is
down; Retry-After, 410 and exhaustion; redeliver and recover; a dispatcher SIGKILLed
mid-delivery loses nothing; two dispatchers never send one delivery twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import REGISTRY, generate_latest
from sqlalchemy import text
from standardwebhooks.webhooks import Webhook as Verifier

from service.domain import reindex
from service.domain.events import EVENT_TYPES
from service.domain.reindex.reembed import PipelineReembedder
from service.domain.webhooks.dispatch import DispatchConfig, Dispatcher
from service.domain.webhooks.targets import Policy
from tests.conftest import FACES_DIR, REPO, make_key
from tests.test_worker import _blank_jpeg, _enqueue, _runner
from tests.webhook_receiver import Receiver, Reply

IDS = FACES_DIR / "identities"
MODEL, OTHER = "dlib-resnet-v1-onnx", "dlib-resnet-v1"
FAST = {
    "webhook_allow_http": True,
    "webhook_allow_private": True,
    "webhook_poll_s": 0.1,
    "webhook_retry_schedule_s": [0.3, 0.3, 0.3],
}


def _upload(name: str, person: str = "obama") -> dict[str, Any]:
    return {"image": (name, (IDS / person / name).read_bytes(), "application/octet-stream")}


def _hook(client: Any, headers: dict[str, str], url: str, events: list[str]) -> dict[str, Any]:
    made = client.post("/v1/webhooks", json={"url": url, "events": events}, headers=headers)
    assert made.status_code == 201, made.text
    return dict(made.json())


def _deliveries(client: Any, hook: str, headers: dict[str, str], **params: str) -> list[Any]:
    got = client.get(f"/v1/webhooks/{hook}/deliveries", params=params, headers=headers)
    assert got.status_code == 200, got.text
    return list(got.json()["items"])


def _until(check: Any, timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_every_event_type_is_delivered_signed(make_client: Any) -> None:
    client = make_client(**FAST)
    admin = {"X-API-Key": make_key(client, "admin")}
    receiver = Receiver()
    try:
        hook = _hook(client, admin, receiver.url, list(EVENT_TYPES))
        gallery = client.post(
            "/v1/galleries", json={"name": "hooks", "model_id": MODEL}, headers=admin
        ).json()["id"]
        subject = client.post(
            f"/v1/galleries/{gallery}/subjects",
            json={"external_id": "p-1", "display_name": "Barack Obama"},
            headers=admin,
        ).json()["id"]
        faces = f"/v1/galleries/{gallery}/subjects/{subject}/faces"
        assert client.post(faces, files=_upload("obama1.jpg"), headers=admin).status_code == 201
        verdict = client.post(
            "/v1/verify",
            files=_upload("obama2.jpg"),
            data={"gallery": gallery, "subject": subject},
            headers={**admin, "X-Request-ID": "req-verify-1"},
        ).json()
        assert verdict["match"] is True
        found = client.post(
            f"/v1/galleries/{gallery}/search", files=_upload("obama3.jpg"), headers=admin
        )
        assert found.status_code == 200, found.text
        assert client.post("/v1/liveness", files=_upload("obama2.jpg"), headers=admin).is_success
        # Through the worker: one enrolled, one failed.
        jobs = [
            _enqueue(client, admin, gallery, subject, (IDS / "obama" / "obama4.jpg").read_bytes()),
            _enqueue(client, admin, gallery, subject, _blank_jpeg()),
        ]
        assert _runner(client).run_once(threading.Event()) == 2
        # A reindex to the other model: completed, activated, rolled back.
        components = client.app.state.container.components
        engine, gid = components.engine, __import__("uuid").UUID(gallery)
        reindex.start(engine, components.index, components.pipeline, gallery_id=gid,
                      to_model=OTHER)  # fmt: skip
        reindex.run(engine, components.index, components.image_store,
                    PipelineReembedder(components.pipeline), gallery_id=gid)  # fmt: skip
        assert reindex.activate(engine, gallery_id=gid) == OTHER
        assert reindex.rollback(engine, gallery_id=gid) == MODEL
        # Erasure.
        assert client.delete(f"/v1/galleries/{gallery}/subjects/{subject}",
                             headers=admin).status_code == 204  # fmt: skip
        assert client.delete(f"/v1/galleries/{gallery}", headers=admin).status_code == 204

        expected = len(EVENT_TYPES) + 1  # enrollment.completed: sync and through the worker
        got = receiver.wait_for(expected)
        time.sleep(0.5)
        assert len(receiver.received) == expected  # nothing twice
        verifier = Verifier(hook["secret"])
        messages = [verifier.verify(r.body, r.headers) for r in got]
        assert sorted({m["type"] for m in messages}) == sorted(EVENT_TYPES)
        for r, m in zip(got, messages, strict=True):
            assert r.headers["webhook-id"] == m["id"] and m["id"].startswith("msg_")
            assert abs(int(r.headers["webhook-timestamp"]) - time.time()) < 60
            assert set(m) == {"type", "id", "timestamp", "data"}
            # No images, embeddings or names leave the database.
            raw = r.body.decode()
            for forbidden in ("Barack Obama", "display_name", "embedding", "image_base64"):
                assert forbidden not in raw, (m["type"], forbidden)
        by_type = {m["type"]: m["data"] for m in messages}
        verify = by_type["verification.completed"]
        assert verify["verification_id"] == verdict["verification_id"]
        assert verify["match"] is True and verify["request_id"] == "req-verify-1"
        assert verify["threshold"] == verdict["threshold"] and verify["model_id"] == MODEL
        assert verify["similarity"] == verdict["similarity"] and verify["external_id"] == "p-1"
        assert by_type["search.completed"]["candidates"][0]["subject_id"] == subject
        assert by_type["liveness.completed"]["liveness"]["decision"] in ("live", "spoof")
        enrolled = [m["data"] for m in messages if m["type"] == "enrollment.completed"]
        assert sorted(str(e["job_id"]) for e in enrolled) == sorted(["None", jobs[0]])
        assert by_type["enrollment.failed"] == {
            "face_id": by_type["enrollment.failed"]["face_id"], "subject_id": subject,
            "gallery_id": gallery, "job_id": jobs[1], "reason": "no_face",
        }  # fmt: skip
        assert by_type["reindex.activated"]["model_id"] == OTHER
        assert by_type["reindex.rolled_back"]["model_id"] == MODEL
        assert by_type["reindex.completed"]["embedded"] == 2
        assert by_type["subject.deleted"]["subject_id"] == subject
        assert by_type["gallery.deleted"]["gallery_id"] == gallery
        delivered = _deliveries(client, hook["id"], admin, status="delivered")
        assert len(delivered) == expected and all(d["attempts"] == 1 for d in delivered)
        assert delivered[0]["last_status_code"] == 200 and delivered[0]["last_response"] == "ok"
        exposed = generate_latest(REGISTRY).decode()
        assert 'faceprint_webhook_deliveries_total{outcome="delivered"}' in exposed
        assert "faceprint_webhook_queue_depth" in exposed
        assert "faceprint_webhook_oldest_pending_seconds" in exposed
    finally:
        receiver.close()


def test_no_subscriber_means_no_event_rows(make_client: Any) -> None:
    client = make_client(**FAST)
    admin = {"X-API-Key": make_key(client, "admin")}
    made = client.post("/v1/galleries", json={"name": "quiet"}, headers=admin).json()
    assert client.delete(f"/v1/galleries/{made['id']}", headers=admin).status_code == 204
    with client.app.state.container.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar_one() == 0


def test_receiver_down_then_back_and_the_retry_rules(make_client: Any) -> None:
    client = make_client(**FAST)
    admin = {"X-API-Key": make_key(client, "admin")}
    receiver = Receiver()
    port = receiver.port
    receiver.close()  # down: connections are refused
    hook = _hook(client, admin, f"http://127.0.0.1:{port}/hooks", ["search.completed"])
    sent = client.post(f"/v1/webhooks/{hook['id']}/test", headers=admin).json()
    _until(lambda: _deliveries(client, hook["id"], admin)[0]["attempts"] >= 2)
    pending = _deliveries(client, hook["id"], admin)[0]
    assert pending["status"] == "pending" and "ConnectError" in pending["last_error"]
    receiver = Receiver(port)  # back
    try:
        got = receiver.wait_for(1)
        assert got[0].headers["webhook-id"] == pending["message_id"]
        done = _until(lambda: _deliveries(client, hook["id"], admin, status="delivered"))
        assert done[0]["id"] == sent["delivery_id"] and done[0]["attempts"] >= 3

        # Retry-After on a 503 is honoured over the (short) schedule.
        receiver.script = [Reply(503, {"Retry-After": "2"})]
        client.post(f"/v1/webhooks/{hook['id']}/test", headers=admin)
        first, second = receiver.wait_for(3)[1:3]
        assert first.headers["webhook-id"] == second.headers["webhook-id"]
        assert second.at - first.at >= 1.9

        # Exhausted: failed and listed; recover sends it again (same webhook-id).
        receiver.script = [Reply(500)] * 4
        client.post(f"/v1/webhooks/{hook['id']}/test", headers=admin)
        failed = _until(lambda: _deliveries(client, hook["id"], admin, status="failed"))
        assert failed[0]["attempts"] == 4 and failed[0]["last_status_code"] == 500
        assert len(receiver.received) == 7
        since = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
        recovered = client.post(
            f"/v1/webhooks/{hook['id']}/recover", json={"since": since}, headers=admin
        )
        assert recovered.status_code == 202 and recovered.json() == {"queued": 1}
        again = receiver.wait_for(8)[7]
        assert again.headers["webhook-id"] == failed[0]["message_id"]
        _until(lambda: not _deliveries(client, hook["id"], admin, status="failed"))

        # Redeliver a delivered one: the same message once more, on request only.
        redone = client.post(
            f"/v1/webhooks/{hook['id']}/deliveries/{sent['delivery_id']}/redeliver",
            headers=admin,
        )
        assert redone.status_code == 202, redone.text
        assert receiver.wait_for(9)[8].headers["webhook-id"] == pending["message_id"]

        # 410 Gone disables the endpoint.
        receiver.script = [Reply(410)]
        client.post(f"/v1/webhooks/{hook['id']}/test", headers=admin)

        def disabled() -> dict[str, Any] | None:
            shown = client.get(f"/v1/webhooks/{hook['id']}", headers=admin).json()
            return None if shown["active"] else dict(shown)

        shown = _until(disabled)
        assert "410" in shown["disabled_reason"]
    finally:
        receiver.close()


def _dispatcher(client: Any, threads: int = 2) -> Dispatcher:
    container = client.app.state.container
    config = DispatchConfig(schedule_s=(0.3,), threads=threads, poll_s=0.1,
                            policy=Policy(allow_http=True, allow_private=True))  # fmt: skip
    return Dispatcher(container.engine, container.secrets.encryption_key, config)


def test_two_dispatchers_send_each_delivery_once(make_client: Any) -> None:
    client = make_client(**{**FAST, "webhook_dispatchers": 0})
    admin = {"X-API-Key": make_key(client, "admin")}
    receiver = Receiver()
    hook = _hook(client, admin, receiver.url, ["search.completed"])
    for _ in range(30):
        client.post(f"/v1/webhooks/{hook['id']}/test", headers=admin)
    first, second = _dispatcher(client, 3).start(), _dispatcher(client, 3).start()
    try:
        got = receiver.wait_for(30)
        time.sleep(0.5)
        ids = [r.headers["webhook-id"] for r in receiver.received]
        assert len(ids) == 30 and len(set(ids)) == 30
        assert got
    finally:
        first.stop()
        second.stop()
        receiver.close()


def test_a_dispatcher_killed_mid_delivery_loses_nothing(make_client: Any, settings: Any) -> None:
    """SIGKILL while the receiver holds the POST: the claim rolls back, the next
    dispatcher sends the same message (same webhook-id): at least once, never lost."""
    client = make_client(**{**FAST, "webhook_dispatchers": 0})
    admin = {"X-API-Key": make_key(client, "admin")}
    receiver = Receiver()
    receiver.script = [Reply(200, delay_s=5.0)]
    hook = _hook(client, admin, receiver.url, ["search.completed"])
    sent = client.post(f"/v1/webhooks/{hook['id']}/test", headers=admin).json()
    env = {
        **os.environ,
        "FACEPRINT_DATA_DIR": str(settings.data_dir),
        "FACEPRINT_DATABASE_URL": settings.database_url.get_secret_value(),
        "FACEPRINT_WEBHOOK_ALLOW_HTTP": "true",
        "FACEPRINT_WEBHOOK_ALLOW_PRIVATE": "true",
        "FACEPRINT_WEBHOOK_POLL_S": "0.1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli.main", "webhooks", "dispatch"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        first = receiver.wait_for(1, timeout_s=60)[0]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        row = _until(lambda: _deliveries(client, hook["id"], admin)[0])
        assert row["status"] == "pending" and row["attempts"] == 0  # rolled back, not lost
        again = _dispatcher(client).start()
        try:
            second = receiver.wait_for(2)[1]
            done = _until(lambda: _deliveries(client, hook["id"], admin, status="delivered"))
        finally:
            again.stop()
        assert first.headers["webhook-id"] == second.headers["webhook-id"]
        assert json.loads(first.body) == json.loads(second.body)
        assert done[0]["id"] == sent["delivery_id"] and done[0]["attempts"] == 1
        assert Verifier(hook["secret"]).verify(second.body, second.headers)
    finally:
        if proc.poll() is None:
            proc.kill()
        receiver.close()


def test_delivered_events_are_pruned_after_the_retention(make_client: Any) -> None:
    client = make_client(**{**FAST, "webhook_dispatchers": 0})
    admin = {"X-API-Key": make_key(client, "admin")}
    hook = _hook(client, admin, "http://127.0.0.1:9/h", ["search.completed"])
    for _ in range(3):
        client.post(f"/v1/webhooks/{hook['id']}/test", headers=admin)
    engine = client.app.state.container.engine
    with engine.begin() as conn:
        ids = conn.execute(text("SELECT id FROM events ORDER BY id")).scalars().all()
        conn.execute(text("UPDATE events SET created_at = now() - interval '40 days'"))
        conn.execute(
            text("UPDATE webhook_deliveries SET status = 'delivered' WHERE event_id = :e"),
            {"e": ids[0]},
        )
        conn.execute(
            text("UPDATE webhook_deliveries SET status = 'failed' WHERE event_id = :e"),
            {"e": ids[1]},
        )
    assert _dispatcher(client).prune() == 1  # the failed and the pending one stay
    with engine.connect() as conn:
        left = conn.execute(text("SELECT id FROM events ORDER BY id")).scalars().all()
    assert left == ids[1:]
