"""The embedding worker on the real app: ``?async=true`` enrollment answered 202, the
worker embeds and indexes the faces, job status over HTTP, the outbox events, failures
with their reason; and SIGKILL of a real ``faceprint worker`` mid-batch."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import numpy as np
from PIL import Image
from prometheus_client import generate_latest
from sqlalchemy import func, select, text

from service.db.models import Event, Face, Template
from service.db.session import make_sessionmaker
from service.jobs.runner import JobRunner, RunnerConfig
from service.worker.loop import EnrollmentHandler
from tests.conftest import FACES_DIR, REPO

IDS = FACES_DIR / "identities"
# Galleries here use the fast ONNX embedder; the race test adds the dlib-bin one.
MODEL, OTHER = "dlib-resnet-v1-onnx", "dlib-resnet-v1"


def _upload(data: bytes, name: str = "photo.jpg") -> dict[str, Any]:
    return {"image": (name, data, "application/octet-stream")}


def _blank_jpeg() -> bytes:
    """A real, decodable photo of nothing: a smooth gradient, no face."""
    ramp = np.linspace(40, 200, 640, dtype=np.uint8)
    pixels = np.broadcast_to(ramp[None, :, None], (480, 640, 3)).copy()
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG")
    return out.getvalue()


def _setup(client: Any, headers: dict[str, str], people: list[str]) -> tuple[str, dict[str, str]]:
    body = {"name": "async", "model_id": MODEL}
    gallery = client.post("/v1/galleries", json=body, headers=headers)
    assert gallery.status_code == 201, gallery.text
    gallery_id = gallery.json()["id"]
    subjects = {}
    for person in people:
        made = client.post(
            f"/v1/galleries/{gallery_id}/subjects", json={"external_id": person}, headers=headers
        )
        assert made.status_code == 201, made.text
        subjects[person] = made.json()["id"]
    return gallery_id, subjects


def _enqueue(client: Any, headers: dict[str, str], gallery: str, subject: str, data: bytes) -> str:
    response = client.post(
        f"/v1/galleries/{gallery}/subjects/{subject}/faces",
        params={"async": "true"},
        files=_upload(data),
        headers=headers,
    )
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


def _runner(client: Any, batch_size: int = 8) -> JobRunner:
    components = client.app.state.container.components
    return JobRunner(
        sessions=make_sessionmaker(components.engine),
        handler=EnrollmentHandler(components),
        config=RunnerConfig(batch_size=batch_size, max_wait_ms=0, poll_s=0.05),
    )


def _subscribe(client: Any) -> None:
    """An endpoint listening for enrollment events: only then are they written (the
    webhook tests deliver them; here only the outbox rows are looked at)."""
    with client.app.state.container.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO webhooks (id, url, secret_encrypted, events, active)"
                " VALUES (gen_random_uuid(), 'https://receiver.invalid/', '\\x00',"
                " ARRAY['enrollment.completed', 'enrollment.failed'], true)"
            )
        )


def test_async_enrollment_is_embedded_by_the_worker(client: Any, admin_key: str) -> None:
    headers = {"X-API-Key": admin_key}
    _subscribe(client)
    gallery, subjects = _setup(client, headers, ["obama", "biden"])
    jobs = {
        "obama1": _enqueue(client, headers, gallery, subjects["obama"],
                           (IDS / "obama" / "obama1.jpg").read_bytes()),
        "obama2": _enqueue(client, headers, gallery, subjects["obama"],
                           (IDS / "obama" / "obama2.jpg").read_bytes()),
        "biden": _enqueue(client, headers, gallery, subjects["biden"],
                          (IDS / "biden" / "biden1.jpg").read_bytes()),
        "blank": _enqueue(client, headers, gallery, subjects["biden"], _blank_jpeg()),
    }  # fmt: skip
    queued = client.get(f"/v1/jobs/{jobs['obama1']}", headers=headers).json()
    assert queued["status"] == "queued" and queued["kind"] == "enroll_face"

    runner = _runner(client)
    assert runner.run_once(threading.Event()) == 4
    assert runner.metrics.batch_size._sum.get() == 4  # noqa: SLF001 - one batch of 4
    exposed = generate_latest(runner.metrics.registry).decode()
    for name in (
        "faceprint_worker_queue_depth",
        "faceprint_worker_batch_size_bucket",
        "faceprint_worker_faces_per_second",
        'faceprint_worker_failures_total{reason="no_face"} 1.0',
        "faceprint_worker_faces_total 3.0",
    ):
        assert name in exposed, name

    for name in ("obama1", "obama2", "biden"):
        body = client.get(f"/v1/jobs/{jobs[name]}", headers=headers).json()
        assert body["status"] == "done", body
        assert body["result"]["model_ids"] == [MODEL]
    failed = client.get(f"/v1/jobs/{jobs['blank']}", headers=headers).json()
    assert failed["status"] == "failed" and failed["attempts"] == 1
    assert failed["result"] == {"reason": "no_face"} and "no face" in failed["error"]

    with client.app.state.container.sessionmaker() as session:
        statuses = dict(
            session.execute(select(Face.status, func.count()).group_by(Face.status)).all()
        )
        templates = session.scalar(select(func.count()).select_from(Template))
        events = session.execute(select(Event.event_type, Event.payload)).all()
    assert statuses == {"ready": 3, "failed": 1}
    assert templates == 3
    completed = [p["data"] for t, p in events if t == "enrollment.completed"]
    assert sorted(p["job_id"] for p in completed) == sorted(
        jobs[n] for n in ("obama1", "obama2", "biden")
    )
    assert [p["data"]["reason"] for t, p in events if t == "enrollment.failed"] == ["no_face"]

    # The asynchronously enrolled faces verify like synchronous ones.
    probe = (IDS / "obama" / "obama3.jpg").read_bytes()
    for person, expected in (("obama", True), ("biden", False)):
        verdict = client.post(
            "/v1/verify",
            files=_upload(probe),
            data={"gallery": gallery, "subject": subjects[person]},
            headers=headers,
        ).json()
        assert verdict["match"] is expected, verdict


def test_a_reindex_started_after_embedding_makes_the_job_embed_again(
    client: Any, admin_key: str
) -> None:
    headers = {"X-API-Key": admin_key}
    gallery, subjects = _setup(client, headers, ["obama"])
    job = _enqueue(client, headers, gallery, subjects["obama"],
                   (IDS / "obama" / "obama1.jpg").read_bytes())  # fmt: skip
    runner = _runner(client)
    batch = runner.gather(threading.Event())
    prepared = runner.handler.prepare(batch)
    # Between embedding and writing, a reindex to another model begins.
    with client.app.state.container.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO models (id, dim, threshold, version)"
                " VALUES (:m, 128, 0.82, 't') ON CONFLICT DO NOTHING"
            ),
            {"m": OTHER},
        )
        conn.execute(
            text("UPDATE galleries SET pending_model_id = :m WHERE id = :g"),
            {"g": gallery, "m": OTHER},
        )
    from service.jobs.runner import BatchOutcome

    outcome = BatchOutcome()
    runner._finish_batch(batch, prepared, outcome)  # noqa: SLF001
    assert outcome.retried == 1
    with client.app.state.container.engine.begin() as conn:
        conn.execute(text("UPDATE jobs SET run_after = now()"))
    assert runner.run_once(threading.Event()) == 1
    body = client.get(f"/v1/jobs/{job}", headers=headers).json()
    assert body["status"] == "done"
    assert sorted(body["result"]["model_ids"]) == sorted([MODEL, OTHER])


def _spawn_worker(env: dict[str, str], worker_id: str, lease_s: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "service.cli.main", "worker", "--worker-id", worker_id,
         "--batch-size", "8", "--max-wait-ms", "200", "--lease-s", str(lease_s)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def test_sigkill_a_real_worker_mid_batch(
    client: Any, admin_key: str, settings: Any, db_url: str
) -> None:
    headers = {"X-API-Key": admin_key}
    _subscribe(client)
    people = ["biden", "alex_lacamoire", "kit_harington"]
    gallery, subjects = _setup(client, headers, people)
    photos = [(p, f) for p in people for f in sorted((IDS / p).iterdir())]
    assert len(photos) == 8
    jobs = [_enqueue(client, headers, gallery, subjects[p], f.read_bytes()) for p, f in photos]
    env = {
        **os.environ,
        "FACEPRINT_DATA_DIR": str(settings.data_dir),  # same secrets: same encryption key
        "FACEPRINT_DATABASE_URL": db_url,
        "FACEPRINT_LOG_LEVEL": "WARNING",
    }
    engine = client.app.state.container.engine

    def held_by(worker: str) -> int:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text("SELECT count(*) FROM jobs WHERE worker_id = :w AND status = 'running'"),
                    {"w": worker},
                ).scalar_one()
            )

    doomed = _spawn_worker(env, "doomed", lease_s=3)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and held_by("doomed") == 0:
            assert doomed.poll() is None, doomed.stderr.read() if doomed.stderr else ""
            time.sleep(0.02)
    finally:
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
    stranded = held_by("doomed")
    assert stranded > 0, "the worker finished before it could be killed"

    rescuer = _spawn_worker(env, "rescuer", lease_s=60)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                left = conn.execute(
                    text("SELECT count(*) FROM jobs WHERE status <> 'done'")
                ).scalar_one()
            if left == 0:
                break
            assert rescuer.poll() is None
            time.sleep(0.2)
    finally:
        rescuer.send_signal(signal.SIGTERM)
        assert rescuer.wait(timeout=60) == 0

    with engine.connect() as conn:
        done = conn.execute(
            text("SELECT count(*) FROM jobs WHERE status = 'done' AND id = ANY(:ids)"),
            {"ids": [uuid.UUID(j) for j in jobs]},
        ).scalar_one()
        per_face = conn.execute(
            text("SELECT face_id, count(*) FROM templates GROUP BY face_id")
        ).all()
        events = conn.execute(
            text(
                "SELECT payload->'data'->>'job_id', count(*) FROM events"
                " WHERE event_type = 'enrollment.completed' GROUP BY 1"
            )
        ).all()
        rescued = conn.execute(
            text("SELECT count(*) FROM jobs WHERE worker_id = 'rescuer' AND attempts >= 2")
        ).scalar_one()
    assert done == len(jobs)
    assert len(per_face) == len(jobs) and all(n == 1 for _, n in per_face)  # no duplicates
    assert sorted(j for j, _ in events) == sorted(jobs) and all(n == 1 for _, n in events)
    assert rescued == stranded  # what the dead worker held was finished by the other


def test_worker_and_enroll_help_explain_themselves() -> None:
    from typer.testing import CliRunner

    from service.cli.main import app

    runner = CliRunner()
    worker = runner.invoke(app, ["worker", "--help"], env={"COLUMNS": "200"})
    assert worker.exit_code == 0
    for needle in ("--batch-size", "--max-wait-ms", "--metrics-port", "SIGTERM"):
        assert needle in worker.output
    enroll = runner.invoke(app, ["enroll", "--help"], env={"COLUMNS": "200"})
    assert "person/photo.jpg" in enroll.output and "--gallery" in enroll.output
