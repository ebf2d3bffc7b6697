"""?dedupe=true: one face cannot be enrolled under two identities of a gallery."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import func, select

from service.db.models import Face
from service.db.session import make_sessionmaker
from service.jobs.runner import JobRunner, RunnerConfig
from service.worker.loop import EnrollmentHandler
from tests.conftest import FACES_DIR

IDS = FACES_DIR / "identities"


def _photo(name: str) -> dict[str, Any]:
    person = {"obama": "obama", "biden": "biden"}[name.rstrip("0123456789")]
    return {"image": (f"{name}.jpg", (IDS / person / f"{name}.jpg").read_bytes(), "image/jpeg")}


def test_dedupe_refuses_a_face_enrolled_as_someone_else(client: Any, admin_key: str) -> None:
    headers = {"X-API-Key": admin_key}
    gallery = client.post("/v1/galleries", json={"name": "kyc"}, headers=headers).json()["id"]

    def subject(external_id: str) -> str:
        r = client.post(
            f"/v1/galleries/{gallery}/subjects", json={"external_id": external_id}, headers=headers
        )
        return str(r.json()["id"])

    real, fake, other = subject("applicant-1"), subject("applicant-2"), subject("applicant-3")
    url = f"/v1/galleries/{gallery}/subjects/{{}}/faces"
    assert client.post(url.format(real), files=_photo("obama1"), headers=headers).status_code == 201

    # The same person under a second identity, from another photo: refused, naming the first.
    refused = client.post(
        url.format(fake), params={"dedupe": "true"}, files=_photo("obama2"), headers=headers
    )
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert body["type"].endswith("/duplicate-identity") and body["subject_id"] == real
    assert (
        body["similarity"]
        >= client.get(f"/v1/galleries/{gallery}", headers=headers).json()["open_set"]["threshold"]
    )
    # Another person passes; the same person's own second photo passes too.
    ok = client.post(
        url.format(other), params={"dedupe": "true"}, files=_photo("biden1"), headers=headers
    )
    assert ok.status_code == 201, ok.text
    again = client.post(
        url.format(real), params={"dedupe": "true"}, files=_photo("obama3"), headers=headers
    )
    assert again.status_code == 201, again.text
    # Without the flag the service does not judge.
    assert client.post(url.format(fake), files=_photo("obama2"), headers=headers).status_code == 201

    # Through the worker: the job fails with the reason, the pending face is marked failed.
    queued = client.post(
        url.format(other),
        params={"dedupe": "true", "async": "true"},
        files=_photo("obama4"),
        headers=headers,
    )
    assert queued.status_code == 202, queued.text
    components = client.app.state.container.components
    runner = JobRunner(
        sessions=make_sessionmaker(components.engine),
        handler=EnrollmentHandler(components),
        config=RunnerConfig(batch_size=4, max_wait_ms=0, poll_s=0.05),
    )
    assert runner.run_once(threading.Event()) == 1
    job = client.get(f"/v1/jobs/{queued.json()['job_id']}", headers=headers).json()
    assert job["status"] == "failed" and job["result"] == {"reason": "duplicate_identity"}, job
    with client.app.state.container.sessionmaker() as session:
        failed = session.scalar(
            select(func.count()).select_from(Face).where(Face.status == "failed")
        )
    assert failed == 1
