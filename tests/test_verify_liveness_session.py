"""Verify bound to a liveness session: the face that proved liveness is the probe."""

from __future__ import annotations

from tests.conftest import FACES_DIR, make_key
from tests.test_liveness_api import jpeg, new_session, post, synthesis

IDENTITIES = FACES_DIR / "identities"


def passed_session(client, key: str, frame, pipeline) -> str:  # noqa: ANN001
    session = new_session(client, key, ["turn_left", "turn_right"])
    box = pipeline.detect_image(frame, max_faces=1)[0].bbox
    mesh = client.app.state.container.liveness.extractor.mesh(
        frame, (box.left, box.top, box.right, box.bottom)
    ).points
    for yaw in (0, 1, 10, 20, 30, 15, 2, -10, -20, -30):
        body = post(client, key, session["id"], jpeg(synthesis.render_pose(frame, mesh, yaw)))
        if body.json()["status"] != "pending":
            break
    assert body.json()["status"] == "passed", body.text
    return session["id"]


def test_verify_uses_the_passed_sessions_face(client, admin_key: str, pipeline) -> None:  # noqa: ANN001
    from tests.test_liveness_api import PHOTO, camera_frame

    admin = {"X-API-Key": admin_key}
    gallery = client.post("/v1/galleries", json={"name": "kyc"}, headers=admin).json()["id"]
    subjects = {}
    for person, photo in (("obama", "obama/obama2.jpg"), ("biden", "biden/biden1.jpg")):
        sid = client.post(
            f"/v1/galleries/{gallery}/subjects", json={"external_id": person}, headers=admin
        ).json()["id"]
        enrolled = client.post(
            f"/v1/galleries/{gallery}/subjects/{sid}/faces",
            files={"image": ("p.jpg", (IDENTITIES / photo).read_bytes())},
            headers=admin,
        )
        assert enrolled.status_code == 201, enrolled.text
        subjects[person] = sid

    key = make_key(client, "client", [gallery])
    headers = {"X-API-Key": key}
    pending = new_session(client, key)["id"]
    refused = client.post(
        "/v1/verify",
        json={"gallery": gallery, "subject": subjects["obama"], "liveness_session": pending},
        headers=headers,
    )
    assert refused.status_code == 409, refused.text

    session_id = passed_session(client, key, camera_frame(PHOTO, pipeline), pipeline)
    same = client.post(
        "/v1/verify",
        json={"gallery": gallery, "subject": subjects["obama"], "liveness_session": session_id},
        headers=headers,
    )
    assert same.status_code == 200, same.text
    body = same.json()
    assert body["match"] is True and body["probe"] is None
    assert body["liveness"]["signals"]["session_id"] == session_id
    other = client.post(
        "/v1/verify",
        json={"gallery": gallery, "subject": subjects["biden"], "liveness_session": session_id},
        headers=headers,
    )
    # One passed session backs one verify: a second subject cannot ride on it.
    assert other.status_code == 409, other.text
    assert other.json()["type"].endswith("/liveness-session-used")

    both = client.post(
        "/v1/verify",
        files={"image": ("p.jpg", (IDENTITIES / "obama" / "obama3.jpg").read_bytes())},
        data={"gallery": gallery, "subject": subjects["obama"], "liveness_session": session_id},
        headers=headers,
    )
    assert both.status_code == 422
    another_key = make_key(client, "client", [gallery])
    stolen = client.post(
        "/v1/verify",
        json={"gallery": gallery, "subject": subjects["obama"], "liveness_session": session_id},
        headers={"X-API-Key": another_key},
    )
    assert stolen.status_code == 404
