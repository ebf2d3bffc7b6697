"""A passed liveness session backs exactly one verify, within a short window after it
passed, and that verify's history row carries the session's own score."""

from __future__ import annotations

import uuid
from datetime import timedelta

import numpy as np
from sqlalchemy import select, update

from service.db.models import LivenessSession, Verification
from tests.conftest import make_key
from tests.test_liveness_api import PHOTO, camera_frame
from tests.test_verify_liveness_session import IDENTITIES, passed_session


def _enrolled(client, admin_key: str) -> tuple[str, str]:  # noqa: ANN001
    admin = {"X-API-Key": admin_key}
    gallery = client.post("/v1/galleries", json={"name": "kyc"}, headers=admin).json()["id"]
    subject = client.post(
        f"/v1/galleries/{gallery}/subjects", json={"external_id": "obama"}, headers=admin
    ).json()["id"]
    face = client.post(
        f"/v1/galleries/{gallery}/subjects/{subject}/faces",
        files={"image": ("p.jpg", (IDENTITIES / "obama" / "obama2.jpg").read_bytes())},
        headers=admin,
    )
    assert face.status_code == 201, face.text
    return gallery, subject


def _age(client, session_id: str, seconds: float) -> None:  # noqa: ANN001
    """Move the moment the session passed into the past, as if time had gone by."""
    with client.app.state.container.sessionmaker() as session:
        row = session.get(LivenessSession, uuid.UUID(session_id))
        assert row is not None and row.completed_at is not None
        session.execute(
            update(LivenessSession)
            .where(LivenessSession.id == row.id)
            .values(completed_at=row.completed_at - timedelta(seconds=seconds))
        )
        session.commit()


def test_second_use_is_409_and_history_has_the_sessions_score(
    client, admin_key: str, pipeline
) -> None:  # noqa: ANN001
    gallery, subject = _enrolled(client, admin_key)
    key = make_key(client, "client", [gallery])
    headers = {"X-API-Key": key}
    session_id = passed_session(client, key, camera_frame(PHOTO, pipeline), pipeline)
    body = {"gallery": gallery, "subject": subject, "liveness_session": session_id}
    first = client.post("/v1/verify", json=body, headers=headers)
    assert first.status_code == 200 and first.json()["match"] is True, first.text
    again = client.post("/v1/verify", json=body, headers=headers)
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    assert again.json()["type"].endswith("/liveness-session-used")

    with client.app.state.container.sessionmaker() as session:
        rows = session.scalars(select(Verification)).all()
    own = next(r for r in rows if r.kind == "liveness")
    verify = next(r for r in rows if r.kind == "verify")
    assert len([r for r in rows if r.kind == "verify"]) == 1  # the refused one left none
    assert own.liveness_score is not None
    assert verify.liveness_score == own.liveness_score
    assert first.json()["liveness"]["score"] == own.liveness_score
    assert verify.liveness_signals["session_id"] == session_id


def test_a_passed_session_is_valid_for_a_window_only(make_client, pipeline) -> None:  # noqa: ANN001
    client = make_client(liveness_session_validity_s=30)
    from tests.conftest import make_key as mk

    admin_key = mk(client, "admin")
    gallery, subject = _enrolled(client, admin_key)
    key = mk(client, "client", [gallery])
    headers = {"X-API-Key": key}
    frame = camera_frame(PHOTO, pipeline)
    fresh = passed_session(client, key, frame, pipeline)
    _age(client, fresh, 20)
    ok = client.post(
        "/v1/verify",
        json={"gallery": gallery, "subject": subject, "liveness_session": fresh},
        headers=headers,
    )
    assert ok.status_code == 200, ok.text
    # A frame one grey level brighter: the same face, but not a replay of the first.
    brighter = np.clip(frame.astype(np.int16) + 1, 0, 255).astype(np.uint8)
    stale = passed_session(client, key, brighter, pipeline)
    _age(client, stale, 31)
    late = client.post(
        "/v1/verify",
        json={"gallery": gallery, "subject": subject, "liveness_session": stale},
        headers=headers,
    )
    assert late.status_code == 410, late.text
    assert late.json()["type"].endswith("/liveness-session-expired")
