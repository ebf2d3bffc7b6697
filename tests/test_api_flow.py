"""The user journey over HTTP: a gallery, one subject per person of the shared photos,
every photo enrolled, then verify and search answer correctly."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from service.db.models import AuditLog, Face, Template, Verification
from tests.conftest import FACES_DIR, make_key

IDENTITIES = FACES_DIR / "identities"


def photos() -> dict[str, list[Path]]:
    return {p.name: sorted(p.iterdir()) for p in sorted(IDENTITIES.iterdir()) if p.is_dir()}


def upload(path: Path) -> dict:
    return {"image": (path.name, path.read_bytes(), "application/octet-stream")}


@pytest.fixture
def enrolled(client, admin_key: str) -> dict:
    headers = {"X-API-Key": admin_key}
    gallery = client.post("/v1/galleries", json={"name": "staff"}, headers=headers)
    assert gallery.status_code == 201, gallery.text
    gallery_id = gallery.json()["id"]
    subjects: dict[str, str] = {}
    for person, files in photos().items():
        created = client.post(
            f"/v1/galleries/{gallery_id}/subjects",
            json={"external_id": person, "display_name": person.replace("_", " ").title()},
            headers=headers,
        )
        assert created.status_code == 201, created.text
        subjects[person] = created.json()["id"]
        for path in files:
            face = client.post(
                f"/v1/galleries/{gallery_id}/subjects/{subjects[person]}/faces",
                files=upload(path),
                headers=headers,
            )
            if face.status_code == 422 and face.json()["type"].endswith("/low-quality"):
                # Low-resolution copies: the refusal says why; the operator overrides it.
                assert any("too small" in p for p in face.json()["problems"]), face.text
                face = client.post(
                    f"/v1/galleries/{gallery_id}/subjects/{subjects[person]}/faces",
                    params={"check_quality": "false"},
                    files=upload(path),
                    headers=headers,
                )
            assert face.status_code == 201, (path, face.text)
            body = face.json()
            assert body["model_id"] == gallery.json()["model_id"]
            assert body["bbox"]["width"] > 0 and body["quality"]["score"] > 0
    return {"gallery": gallery_id, "subjects": subjects, "headers": headers}


def test_verify_and_search_every_photo(client, enrolled: dict) -> None:
    gallery, subjects, headers = enrolled["gallery"], enrolled["subjects"], enrolled["headers"]
    client_key = make_key(client, "client", [gallery])
    client_headers = {"X-API-Key": client_key}
    calls = 0
    for person, files in photos().items():
        for path in files:
            for other, subject_id in subjects.items():
                response = client.post(
                    "/v1/verify",
                    files=upload(path),
                    data={"gallery": gallery, "subject": subject_id},
                    headers=client_headers,
                )
                assert response.status_code == 200, response.text
                body = response.json()
                assert body["match"] is (other == person), (path.name, other, body["similarity"])
                calls += 1
            found = client.post(
                f"/v1/galleries/{gallery}/search", files=upload(path), headers=client_headers
            )
            assert found.status_code == 200, found.text
            candidates = found.json()["candidates"]
            assert candidates and candidates[0]["external_id"] == person
            assert len({c["subject_id"] for c in candidates}) == len(candidates)
            calls += 1
    with client.app.state.container.sessionmaker() as session:
        assert session.scalar(select(func.count()).select_from(Verification)) == calls
    history = client.get("/v1/verifications", params={"limit": 5}, headers=client_headers).json()
    assert len(history["items"]) == 5 and history["next_cursor"]
    assert headers  # the operator's key stays valid throughout


def test_verify_by_external_id_and_image_pair(client, enrolled: dict) -> None:
    gallery, headers = enrolled["gallery"], enrolled["headers"]
    obama = IDENTITIES / "obama"
    by_external = client.post(
        "/v1/verify",
        files=upload(obama / "obama2.jpg"),
        data={"gallery": gallery, "external_id": "obama"},
        headers=headers,
    )
    assert by_external.status_code == 200 and by_external.json()["match"] is True
    pair = client.post(
        "/v1/verify",
        files={
            "image": ("a.jpg", (obama / "obama1.jpg").read_bytes()),
            "reference_image": ("b.jpg", (IDENTITIES / "biden" / "biden1.jpg").read_bytes()),
        },
        headers=headers,
    )
    assert pair.status_code == 200, pair.text
    assert pair.json()["match"] is False and pair.json()["reference"] is not None


def test_search_open_set_returns_empty_list(client, enrolled: dict) -> None:
    gallery, headers, subjects = enrolled["gallery"], enrolled["headers"], enrolled["subjects"]
    deleted = client.delete(
        f"/v1/galleries/{gallery}/subjects/{subjects['biden']}", headers=headers
    )
    assert deleted.status_code == 204
    found = client.post(
        f"/v1/galleries/{gallery}/search",
        files=upload(IDENTITIES / "biden" / "biden1.jpg"),
        headers=headers,
    )
    assert found.status_code == 200
    assert all(c["external_id"] != "biden" for c in found.json()["candidates"])


def test_deleting_a_subject_erases_templates_images_and_is_audited(client, enrolled: dict) -> None:
    gallery, headers, subjects = enrolled["gallery"], enrolled["headers"], enrolled["subjects"]
    components = client.app.state.container.components
    with client.app.state.container.sessionmaker() as session:
        keys = session.scalars(
            select(Face.image_key).where(Face.subject_id == subjects["kit_harington"])
        ).all()
    assert keys and all(components.image_store.exists(k) for k in keys)
    response = client.delete(
        f"/v1/galleries/{gallery}/subjects/{subjects['kit_harington']}", headers=headers
    )
    assert response.status_code == 204
    assert not any(components.image_store.exists(k) for k in keys)
    with client.app.state.container.sessionmaker() as session:
        left = session.scalar(
            select(func.count())
            .select_from(Template)
            .where(Template.subject_id == subjects["kit_harington"])
        )
        actions = session.scalars(select(AuditLog.action)).all()
    assert left == 0 and "subject.erase" in actions
    gone = client.get(
        f"/v1/galleries/{gallery}/subjects/{subjects['kit_harington']}", headers=headers
    )
    assert gone.status_code == 404


def test_stored_originals_are_encrypted_at_rest(client, enrolled: dict, data_dir: Path) -> None:
    original = (IDENTITIES / "rose_leslie" / "rose1.jpg").read_bytes()
    stored = [p for p in (data_dir / "images").rglob("*") if p.is_file()]
    assert stored
    assert all(original[:64] not in p.read_bytes() for p in stored)


def test_verify_with_liveness_stores_the_outcome_in_history(client, enrolled: dict) -> None:
    gallery, headers = enrolled["gallery"], enrolled["headers"]
    response = client.post(
        "/v1/verify",
        files=upload(IDENTITIES / "obama" / "obama3.jpg"),
        data={"gallery": gallery, "external_id": "obama", "liveness": "true"},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["liveness"]["decision"] in {"live", "spoof"}
    assert body["liveness"]["signals"]
    row = client.get(f"/v1/verifications/{body['verification_id']}", headers=headers).json()
    assert row["liveness_decision"] == body["liveness"]["decision"]
    assert row["liveness_score"] == pytest.approx(body["liveness"]["score"])
    assert set(row["liveness_signals"]) == set(body["liveness"]["signals"])
    timing = response.headers["server-timing"]
    assert "pipeline;dur=" in timing and "total;dur=" in timing
