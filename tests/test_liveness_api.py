"""End to end over HTTP, with the real pipeline, mesh, tracker and database: challenge
sessions driven by frames synthesised from the shared photos, and the passive check."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select, update

from liveness import attacks, synthesis
from service.db.models import LivenessSession, Verification
from service.domain.liveness import passive
from service.domain.liveness import sessions as liveness_service
from tests.conftest import FACES_DIR, make_key

PHOTO = FACES_DIR / "identities" / "obama" / "obama1.jpg"
OTHER = FACES_DIR / "identities" / "rose_leslie" / "rose2.jpg"


def camera_frame(path: Path, pipeline) -> np.ndarray:  # noqa: ANN001
    """A 640×480 frame with the photo's face in the middle, as a webcam would send."""
    image = np.asarray(Image.open(path).convert("RGB"))
    b = pipeline.detect_image(image, max_faces=1)[0].bbox
    return synthesis.camera_frame(image, (b.left, b.top, b.right, b.bottom))


def jpeg(image: np.ndarray, quality: int = 92) -> bytes:
    ok, data = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return data.tobytes()


def shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    m = np.array([[1, 0, dx], [0, 1, dy]], np.float64)
    return cv2.warpAffine(image, m, (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REFLECT)


@pytest.fixture
def key(client) -> str:  # noqa: ANN001
    return make_key(client, "client")


@pytest.fixture
def frame(pipeline) -> np.ndarray:  # noqa: ANN001
    return camera_frame(PHOTO, pipeline)


def new_session(client, key: str, actions: list[str] | None = None) -> dict:  # noqa: ANN001
    r = client.post("/v1/liveness/sessions", headers={"X-API-Key": key})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "pending" and 2 <= len(body["actions"]) <= 4
    if actions is not None:
        # Fix the challenge so the synthesised frames can perform it.
        with client.app.state.container.sessionmaker() as s:
            row = s.get(LivenessSession, uuid.UUID(body["id"]))
            machine = dict(row.state["machine"], actions=actions)
            s.execute(
                update(LivenessSession)
                .where(LivenessSession.id == row.id)
                .values(actions=actions, state=dict(row.state, machine=machine))
            )
            s.commit()
        body["actions"] = actions
    return body


def post(client, key: str, sid: str, data: bytes, *, last: bool = False):  # noqa: ANN001, ANN201
    return client.post(
        f"/v1/liveness/sessions/{sid}/frames",
        headers={"X-API-Key": key},
        files={"image": ("frame.jpg", data, "image/jpeg")},
        data={"last": "true"} if last else {},
    )


def history(client, kind: str = "liveness") -> list[Verification]:  # noqa: ANN001
    with client.app.state.container.sessionmaker() as s:
        return list(s.scalars(select(Verification).where(Verification.kind == kind)))


def test_a_3d_head_turn_passes_and_its_last_face_is_the_probe(client, key, frame, pipeline) -> None:  # noqa: ANN001
    session = new_session(client, key, ["turn_left", "turn_right"])
    image = frame
    box = pipeline.detect_image(image, max_faces=1)[0].bbox
    mesh = client.app.state.container.liveness.extractor.mesh(
        image, (box.left, box.top, box.right, box.bottom)
    ).points
    body = None
    for yaw in (0, 1, 10, 20, 30, 15, 2, -10, -20, -30):
        body = post(
            client, key, session["id"], jpeg(synthesis.render_pose(image, mesh, yaw))
        ).json()
        if body["status"] != "pending":
            break
    assert body["status"] == "passed", body
    assert [c["action"] for c in body["completed"]] == ["turn_left", "turn_right"]
    assert body["signals"]["depth"]["planar"] is False
    assert body["signals"]["depth"]["score"] > 0.4
    assert body["signals"]["min_face_similarity"] > 0.9
    rows = history(client)
    assert len(rows) == 1 and rows[0].liveness_decision == "live"
    assert rows[0].liveness_signals["session_id"] == session["id"]
    assert str(rows[0].id) == body["verification_id"]
    with client.app.state.container.sessionmaker() as s:
        probe = liveness_service.session_probe(
            client.app.state.container.liveness,
            s,
            _principal(client, key),
            uuid.UUID(session["id"]),
        )
    assert len(probe.embedding) == 128
    assert probe.model_id == client.app.state.container.liveness.model_id
    assert probe.score == rows[0].liveness_score


def _principal(client, key: str):  # noqa: ANN001, ANN202
    from service.domain.auth.api_keys import authenticate_api_key

    with client.app.state.container.sessionmaker() as s:
        return authenticate_api_key(s, key)


def test_planar_attack_fails_on_depth_from_motion(client, key, frame) -> None:  # noqa: ANN001
    """One photo turned as a flat sheet, as a print or a phone held up to the camera."""
    session = new_session(client, key, ["turn_left", "turn_right"])
    centre = (320.0, 240.0)
    body = None
    for yaw in (0, 1, 10, 20, 30, 40, 20, 0, -20, -40):
        body = post(
            client, key, session["id"], jpeg(synthesis.planar_pose(frame, centre, yaw))
        ).json()
        if body["status"] != "pending":
            break
    assert body["status"] == "failed", body
    assert "planar_motion" in body["reasons"]
    assert body["signals"]["depth"]["planar"] is True
    (row,) = history(client)
    assert row.liveness_decision == "spoof" and "planar_motion" in row.liveness_signals["reasons"]


def test_a_sequence_without_the_asked_action_fails(client, key, frame) -> None:  # noqa: ANN001
    session = new_session(client, key)
    shifts = [(0, 0), (1.5, 0), (0, 1.5), (-1.5, 0), (0, -1.5)]
    for i, (dx, dy) in enumerate(shifts):
        r = post(
            client, key, session["id"], jpeg(shifted(frame, dx, dy)), last=i == len(shifts) - 1
        )
        assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "failed"
    assert "incomplete" in body["reasons"]
    assert f"not_performed:{session['actions'][0]}" in body["reasons"]
    assert body["frames_received"] == len(shifts)
    got = client.get(f"/v1/liveness/sessions/{session['id']}", headers={"X-API-Key": key}).json()
    assert got["status"] == "failed" and got["reasons"] == body["reasons"]


def test_sessions_are_single_use_and_bound_to_their_key(client, key, frame) -> None:  # noqa: ANN001
    session = new_session(client, key)
    sid = session["id"]
    other = make_key(client, "client")
    assert (
        client.get(f"/v1/liveness/sessions/{sid}", headers={"X-API-Key": other}).status_code == 404
    )
    assert post(client, other, sid, jpeg(frame)).status_code == 404
    assert post(client, key, sid, jpeg(frame), last=True).json()["status"] == "failed"
    again = post(client, key, sid, jpeg(frame, 80))
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    assert again.json()["type"].endswith("/liveness-session-closed")
    missing = client.get(f"/v1/liveness/sessions/{uuid.uuid4()}", headers={"X-API-Key": key})
    assert missing.status_code == 404
    assert client.post("/v1/liveness/sessions").status_code == 401


def test_frames_replayed_from_another_session_fail(client, key, frame) -> None:  # noqa: ANN001
    first = new_session(client, key)
    data = jpeg(frame)
    assert post(client, key, first["id"], data).json()["status"] == "pending"
    dup = post(client, key, first["id"], data)
    assert dup.status_code == 409 and dup.json()["type"].endswith("/duplicate-frame")
    second = new_session(client, key)
    body = post(client, key, second["id"], data).json()
    assert body["status"] == "failed" and body["reasons"] == ["replayed_frame"]


def test_replay_lookup_is_answered_by_the_digest_index(engine) -> None:  # noqa: ANN001
    """The cross-session replay check runs on every frame: it must be an index lookup,
    not a scan of every session's state."""
    with engine.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")
        sql = liveness_service._REPLAYED_SQL.compile(engine)
        plan = conn.exec_driver_sql(
            "EXPLAIN " + str(sql).replace("%(row_id)s", "%s").replace("%(digests)s", "%s"),
            (uuid.uuid4(), '["ab"]'),
        ).scalars()
        assert "ix_liveness_sessions_digests" in "\n".join(plan)


def test_an_expired_session_fails(client, key, frame) -> None:  # noqa: ANN001
    client.app.state.container.liveness.session_ttl_s = 0.3
    session = new_session(client, key)
    time.sleep(0.5)
    r = post(client, key, session["id"], jpeg(frame))
    assert r.status_code == 410 and r.json()["type"].endswith("/liveness-session-expired")
    got = client.get(f"/v1/liveness/sessions/{session['id']}", headers={"X-API-Key": key}).json()
    assert got["status"] == "failed" and got["reasons"][0] == "expired"
    assert len(history(client)) == 1


def test_a_different_face_swapped_in_fails(client, key, frame, pipeline) -> None:  # noqa: ANN001
    session = new_session(client, key, ["turn_left", "turn_right"])
    assert post(client, key, session["id"], jpeg(frame)).json()["status"] == "pending"
    body = post(client, key, session["id"], jpeg(camera_frame(OTHER, pipeline))).json()
    assert body["status"] == "failed" and body["reasons"] == ["face_changed"]


def test_a_face_swapped_in_between_embedded_frames_fails(client, key, frame, pipeline) -> None:  # noqa: ANN001
    """Not every frame is embedded: a face swapped in on a frame the schedule would
    skip is caught by the break in continuity, which asks for the embedding."""
    session = new_session(client, key, ["turn_left", "turn_right"])
    box = pipeline.detect_image(frame, max_faces=1)[0].bbox
    mesh = client.app.state.container.liveness.extractor.mesh(
        frame, (box.left, box.top, box.right, box.bottom)
    ).points
    for yaw in (0, 1, 2, 3):
        body = post(client, key, session["id"], jpeg(synthesis.render_pose(frame, mesh, yaw)))
        assert body.json()["status"] == "pending", body.text
    with client.app.state.container.sessionmaker() as s:
        machine = s.get(LivenessSession, uuid.UUID(session["id"])).state["machine"]
    # The swap lands on a frame the schedule alone would not embed.
    assert machine["unembedded"] < client.app.state.container.liveness.policy.max_unembedded
    body = post(client, key, session["id"], jpeg(camera_frame(OTHER, pipeline))).json()
    assert body["status"] == "failed" and body["reasons"] == ["face_changed"]


def test_bad_uploads_are_problems(client, key) -> None:  # noqa: ANN001
    session = new_session(client, key)
    r = post(client, key, session["id"], b"this is not an image")
    assert r.status_code == 415 and r.headers["content-type"].startswith("application/problem+json")
    r = post(client, key, session["id"], b"\xff\xd8\xff\xe0" + b"\x00" * 64)
    assert r.status_code in (400, 415)
    r = client.post(
        f"/v1/liveness/sessions/{session['id']}/frames",
        headers={"X-API-Key": key},
        files={"picture": ("f.jpg", b"abc", "image/jpeg")},
    )
    assert r.status_code == 422
    client.app.state.container.settings.max_upload_bytes = 2_000
    r = post(client, key, session["id"], b"\xff" * 5_000)
    assert r.status_code == 413
    r = client.post("/v1/liveness", headers={"X-API-Key": key}, content=b"x", params={})
    assert r.status_code in (413, 415, 422)


def test_passive_check_scores_and_records(client, key, frame) -> None:  # noqa: ANN001
    live = client.post(
        "/v1/liveness",
        headers={"X-API-Key": key},
        files={"image": ("f.jpg", jpeg(frame), "image/jpeg")},
    )
    assert live.status_code == 200, live.text
    body = live.json()
    assert body["decision"] == "live" and body["score"] >= body["threshold"]
    assert set(body["signals"]) >= {"texture", "frequency", "colour", "border"}
    printed = attacks.simulated_print(frame, np.random.default_rng(4))
    spoof = client.post(
        "/v1/liveness",
        headers={"X-API-Key": key},
        files={"image": ("f.jpg", jpeg(printed), "image/jpeg")},
    ).json()
    assert spoof["decision"] == "spoof", spoof
    assert spoof["signals"]["frequency"]["attack"] > 0.5
    rows = {str(r.id): r for r in history(client)}
    assert rows[body["verification_id"]].liveness_decision == "live"
    assert rows[spoof["verification_id"]].liveness_signals["frequency"]["spectral_peak"] > 2
    result = passive.passive_check(client.app.state.container.liveness, jpeg(frame))
    assert result.decision == "live" and "bbox" in result.signals
    blank = np.full((480, 640, 3), 128, np.uint8)
    r = client.post(
        "/v1/liveness",
        headers={"X-API-Key": key},
        files={"image": ("f.jpg", jpeg(blank), "image/jpeg")},
    )
    assert r.status_code == 422 and r.json()["type"].endswith("/no-face")
