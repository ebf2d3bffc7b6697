"""The HTTP gaps an operator met: PATCH on galleries, counts in the lists, the audit
log over HTTP, a subject's export, and the small faults (405, a key sent as Bearer)."""

from __future__ import annotations

import base64
import hashlib

from fastapi.testclient import TestClient

from tests.conftest import FACES_DIR, make_key

OBAMA = FACES_DIR / "identities" / "obama"
PROBLEM = "application/problem+json"


def _gallery(client: TestClient, headers: dict[str, str], name: str = "staff") -> str:
    created = client.post("/v1/galleries", json={"name": name}, headers=headers)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _subject_with_face(client: TestClient, headers: dict[str, str], gallery: str, ext: str) -> str:
    subject = client.post(
        f"/v1/galleries/{gallery}/subjects", json={"external_id": ext}, headers=headers
    ).json()["id"]
    photo = OBAMA / "obama1.jpg"
    face = client.post(
        f"/v1/galleries/{gallery}/subjects/{subject}/faces",
        files={"image": (photo.name, photo.read_bytes())},
        headers=headers,
    )
    assert face.status_code == 201, face.text
    return str(subject)


def test_patch_gallery_and_counts_in_lists(client: TestClient, admin_key: str) -> None:
    headers = {"X-API-Key": admin_key}
    gallery = _gallery(client, headers)
    empty = _gallery(client, headers, "empty")
    subject = _subject_with_face(client, headers, gallery, "emp-1")
    client.post(f"/v1/galleries/{gallery}/subjects", json={"external_id": "emp-2"}, headers=headers)

    listed = client.get("/v1/galleries", headers=headers).json()["items"]
    assert {g["name"]: g["subject_count"] for g in listed} == {"staff": 2, "empty": 0}
    people = client.get(f"/v1/galleries/{gallery}/subjects", headers=headers).json()["items"]
    assert {p["external_id"]: p["face_count"] for p in people} == {"emp-1": 1, "emp-2": 0}

    patched = client.patch(
        f"/v1/galleries/{gallery}", json={"name": "staff-2024", "store_probes": True},
        headers=headers,
    )  # fmt: skip
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["name"], body["store_probes"], body["subject_count"]) == ("staff-2024", True, 2)
    assert client.get(f"/v1/galleries/{gallery}", headers=headers).json()["name"] == "staff-2024"
    # Only what was sent changes; the model is not a field here (a reindex changes it).
    renamed = client.patch(f"/v1/galleries/{gallery}", json={"name": "staff"}, headers=headers)
    assert renamed.json()["store_probes"] is True
    refused = client.patch(f"/v1/galleries/{gallery}", json={"model_id": "x"}, headers=headers)
    assert refused.status_code == 422 and refused.headers["content-type"] == PROBLEM
    blank = client.patch(f"/v1/galleries/{gallery}", json={"name": ""}, headers=headers)
    assert blank.status_code == 422
    # A key restricted to another gallery does not learn this one exists.
    other = make_key(client, "operator", galleries=[empty])
    hidden = client.patch(
        f"/v1/galleries/{gallery}", json={"name": "x"}, headers={"X-API-Key": other}
    )
    assert hidden.status_code == 404
    client_key = make_key(client, "client")
    assert (
        client.patch(
            f"/v1/galleries/{gallery}", json={"name": "x"}, headers={"X-API-Key": client_key}
        ).status_code
        == 403
    )
    assert subject


def test_audit_log_over_http(client: TestClient, admin_key: str) -> None:
    headers = {"X-API-Key": admin_key}
    gallery = _gallery(client, headers)
    client.patch(f"/v1/galleries/{gallery}", json={"name": "renamed"}, headers=headers)
    subject = _subject_with_face(client, headers, gallery, "emp-1")
    assert (
        client.delete(f"/v1/galleries/{gallery}/subjects/{subject}", headers=headers).status_code
        == 204
    )

    everything = client.get("/v1/audit", headers=headers)
    assert everything.status_code == 200, everything.text
    actions = [r["action"] for r in everything.json()["items"]]
    assert actions == [
        "subject.erase", "face.enroll", "subject.create", "gallery.update", "gallery.create",
        "api_key.create",  # the admin key of the fixture
    ]  # fmt: skip
    latest = everything.json()["items"][0]
    assert latest["target_id"] == subject and latest["details"]["faces_erased"] == 1
    assert latest["actor_type"] == "api_key" and latest["request_id"]
    assert everything.json()["items"][3]["details"] == {"name": "renamed"}

    family = client.get("/v1/audit", params={"action": "gallery."}, headers=headers).json()
    assert [r["action"] for r in family["items"]] == ["gallery.update", "gallery.create"]
    about = client.get("/v1/audit", params={"target_id": gallery}, headers=headers).json()
    assert len(about["items"]) == 2

    # Pages follow each other with no row twice and none missed.
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/audit", params=params, headers=headers).json()
        seen += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [r["id"] for r in everything.json()["items"]]
    bad = client.get("/v1/audit", params={"cursor": "garbage"}, headers=headers)
    assert bad.status_code == 400 and bad.json()["type"].endswith("/bad-cursor")

    operator = make_key(client, "operator")
    assert client.get("/v1/audit", headers={"X-API-Key": operator}).status_code == 403
    restricted = make_key(client, "admin", galleries=[gallery])
    refused = client.get("/v1/audit", headers={"X-API-Key": restricted})
    assert refused.status_code == 403 and refused.headers["content-type"] == PROBLEM


def test_subject_export_holds_everything_and_is_audited(client: TestClient, admin_key: str) -> None:
    headers = {"X-API-Key": admin_key}
    gallery = _gallery(client, headers)
    subject = _subject_with_face(client, headers, gallery, "emp-1")
    probe = OBAMA / "obama2.jpg"
    verified = client.post(
        "/v1/verify", files={"image": (probe.name, probe.read_bytes())},
        data={"gallery": gallery, "subject": subject}, headers=headers,
    )  # fmt: skip
    assert verified.status_code == 200, verified.text

    url = f"/v1/galleries/{gallery}/subjects/{subject}/export"
    plain = client.get(url, headers=headers)
    assert plain.status_code == 200, plain.text
    body = plain.json()
    assert body["subject"]["external_id"] == "emp-1" and body["subject"]["face_count"] == 1
    assert [v["id"] for v in body["verifications"]] == [verified.json()["verification_id"]]
    assert body["faces"][0]["image_base64"] is None
    assert "subject.create" in [a["action"] for a in body["audit"]]

    with_images = client.get(url, params={"images": "true"}, headers=headers).json()
    original = base64.b64decode(with_images["faces"][0]["image_base64"])
    assert original == (OBAMA / "obama1.jpg").read_bytes()
    assert hashlib.sha256(original).hexdigest() == with_images["faces"][0]["image_sha256"]
    # The first export is in the second one's audit rows.
    assert "subject.export" in [a["action"] for a in with_images["audit"]]

    missing = client.get(f"/v1/galleries/{gallery}/subjects/{gallery}/export", headers=headers)
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM


def test_small_faults(client: TestClient, admin_key: str) -> None:
    wrong_method = client.get("/v1/verify", headers={"X-API-Key": admin_key})
    assert wrong_method.status_code == 405
    assert wrong_method.json()["type"].endswith("/method-not-allowed")
    assert (
        wrong_method.headers["content-type"] == PROBLEM and "POST" in wrong_method.headers["allow"]
    )

    as_bearer = client.get("/v1/galleries", headers={"Authorization": f"Bearer {admin_key}"})
    assert as_bearer.status_code == 401 and "X-API-Key" in as_bearer.json()["detail"]
    bad_token = client.get("/v1/galleries", headers={"Authorization": "Bearer not-a-token"})
    assert bad_token.status_code == 401 and "invalid or expired" in bad_token.json()["detail"]
