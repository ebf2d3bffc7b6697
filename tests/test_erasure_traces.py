"""Erasing a subject removes every biometric trace it left: its stored verify and search
probe images, and the names copied into search history; the audit entry says what went."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import select

from service.db.models import AuditLog, Verification
from tests.conftest import FACES_DIR

IDENTITIES = FACES_DIR / "identities"


def _image(person: str, name: str) -> dict:
    return {"image": ("p.jpg", (IDENTITIES / person / name).read_bytes())}


def test_erasing_a_subject_erases_its_probes_and_names_in_history(client, admin_key: str) -> None:
    headers = {"X-API-Key": admin_key}
    gallery = client.post(
        "/v1/galleries", json={"name": "kyc", "store_probes": True}, headers=headers
    ).json()["id"]
    subjects = {}
    for person, photo, name in (
        ("obama", "obama1.jpg", "Barack Obama"),
        ("biden", "biden1.jpg", "Joe Biden"),
    ):
        sid = client.post(
            f"/v1/galleries/{gallery}/subjects",
            json={"external_id": f"ext-{person}", "display_name": name},
            headers=headers,
        ).json()["id"]
        face = client.post(
            f"/v1/galleries/{gallery}/subjects/{sid}/faces",
            files=_image(person, photo), headers=headers,
        )  # fmt: skip
        assert face.status_code == 201, face.text
        subjects[person] = sid

    verify = client.post(
        "/v1/verify",
        files=_image("obama", "obama2.jpg"),
        data={"gallery": gallery, "subject": subjects["obama"]},
        headers=headers,
    )
    assert verify.status_code == 200, verify.text
    search = client.post(
        f"/v1/galleries/{gallery}/search",
        files=_image("obama", "obama3.jpg"),
        data={"k": "5", "threshold": "0"},
        headers=headers,
    )
    assert search.status_code == 200, search.text
    assert {c["subject_id"] for c in search.json()["candidates"]} == set(subjects.values())
    other = client.post(
        "/v1/verify",
        files=_image("biden", "biden2.jpg"),
        data={"gallery": gallery, "subject": subjects["biden"]},
        headers=headers,
    )
    assert other.status_code == 200

    store = client.app.state.container.components.image_store
    with client.app.state.container.sessionmaker() as session:
        keys = {r.id: r.probe_image_key for r in session.scalars(select(Verification))}
    obama_probes = [keys[uuid.UUID(verify.json()["verification_id"])],
                    keys[uuid.UUID(search.json()["verification_id"])]]  # fmt: skip
    biden_probe = keys[uuid.UUID(other.json()["verification_id"])]
    assert all(k and store.exists(k) for k in [*obama_probes, biden_probe])

    erased = client.delete(f"/v1/galleries/{gallery}/subjects/{subjects['obama']}", headers=headers)
    assert erased.status_code == 204

    assert not any(store.exists(k) for k in obama_probes)
    assert store.exists(biden_probe)  # another subject's trace stays
    with client.app.state.container.sessionmaker() as session:
        rows = session.scalars(select(Verification)).all()
        audit = session.scalars(select(AuditLog).where(AuditLog.action == "subject.erase")).one()
    dump = json.dumps([[r.candidates, r.external_id, r.probe_image_key] for r in rows])
    assert "Barack Obama" not in dump and "ext-obama" not in dump
    assert "Joe Biden" in dump  # the other candidate keeps its name
    for key in obama_probes:
        assert key not in dump
    history = client.get("/v1/verifications", headers=headers).json()["items"]
    assert "Barack Obama" not in json.dumps(history)
    details = audit.details
    assert details["faces_erased"] == 1
    assert details["probe_images_erased"] == 2
    assert details["history_rows_anonymised"] == 2
    assert details["candidate_entries_anonymised"] == 1


def test_erasing_a_gallery_anonymises_its_history(client, admin_key: str) -> None:
    headers = {"X-API-Key": admin_key}
    gallery = client.post(
        "/v1/galleries", json={"name": "g", "store_probes": True}, headers=headers
    ).json()["id"]
    sid = client.post(
        f"/v1/galleries/{gallery}/subjects",
        json={"external_id": "ext-obama", "display_name": "Barack Obama"},
        headers=headers,
    ).json()["id"]
    face = client.post(
        f"/v1/galleries/{gallery}/subjects/{sid}/faces",
        files=_image("obama", "obama1.jpg"), headers=headers,
    )  # fmt: skip
    assert face.status_code == 201
    found = client.post(
        f"/v1/galleries/{gallery}/search", files=_image("obama", "obama2.jpg"), headers=headers
    )
    assert found.status_code == 200 and found.json()["candidates"]
    assert client.delete(f"/v1/galleries/{gallery}", headers=headers).status_code == 204
    with client.app.state.container.sessionmaker() as session:
        rows = session.scalars(select(Verification)).all()
        audit = session.scalars(select(AuditLog).where(AuditLog.action == "gallery.erase")).one()
    dump = json.dumps([[r.candidates, r.external_id, r.probe_image_key] for r in rows])
    assert "Barack Obama" not in dump and "ext-obama" not in dump and "probes" not in dump
    assert audit.details["history_rows_anonymised"] == 1
