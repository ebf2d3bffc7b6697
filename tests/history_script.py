"""A scripted history over real HTTP: a gallery of three people, verifications of
genuine and impostor pairs, searches, passive liveness checks, and reviewers' labels.
The analytics tests compute every number again from the rows it leaves."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import FACES_DIR

IDENTITIES = FACES_DIR / "identities"
ENROLLED = {"obama": "obama1.jpg", "biden": "biden1.jpg", "kit_harington": "kit1.jpg"}
PROBES = [
    ("obama", "obama2.jpg"),
    ("biden", "biden2.jpg"),
    ("kit_harington", "kit2.jpg"),
    ("alex_lacamoire", "alex2.jpg"),
]


def upload(person: str, name: str) -> dict:
    path: Path = IDENTITIES / person / name
    return {"image": (path.name, path.read_bytes(), "application/octet-stream")}


@dataclass
class Script:
    gallery: str
    headers: dict[str, str]
    subjects: dict[str, str]
    # verification id -> the label the script gave it (None: left unlabelled)
    labels: dict[str, str | None] = field(default_factory=dict)


def enroll_gallery(client, headers: dict[str, str], name: str = "door") -> Script:  # noqa: ANN001
    gallery = client.post("/v1/galleries", json={"name": name}, headers=headers)
    assert gallery.status_code == 201, gallery.text
    gallery_id = gallery.json()["id"]
    subjects = {}
    for person, photo in ENROLLED.items():
        created = client.post(
            f"/v1/galleries/{gallery_id}/subjects", json={"external_id": person}, headers=headers
        )
        assert created.status_code == 201, created.text
        subjects[person] = created.json()["id"]
        face = client.post(
            f"/v1/galleries/{gallery_id}/subjects/{subjects[person]}/faces",
            params={"check_quality": "false"},
            files=upload(person, photo),
            headers=headers,
        )
        assert face.status_code == 201, face.text
    return Script(gallery_id, headers, subjects)


def verify(client, script: Script, person: str, photo: str, claimed: str) -> str:  # noqa: ANN001
    response = client.post(
        "/v1/verify",
        files=upload(person, photo),
        data={"gallery": script.gallery, "subject": script.subjects[claimed]},
        headers=script.headers,
    )
    assert response.status_code == 200, response.text
    return response.json()["verification_id"]


def label(client, script: Script, verification_id: str, value: str | None) -> None:  # noqa: ANN001
    response = client.patch(
        f"/v1/verifications/{verification_id}",
        json={"label": value, "note": "manual review"},
        headers=script.headers,
    )
    assert response.status_code == 200, response.text
    script.labels[verification_id] = value


def run(client, headers: dict[str, str]) -> Script:  # noqa: ANN001
    """Every probe against every enrolled subject (labelled genuine or impostor, but one
    left unlabelled), two searches, two passive liveness checks labelled bona fide."""
    script = enroll_gallery(client, headers)
    first = True
    for person, photo in PROBES:
        for claimed in ENROLLED:
            row = verify(client, script, person, photo, claimed)
            if first:
                first = False  # an unreviewed decision: counted in volume, not in errors
                continue
            label(client, script, row, "genuine" if person == claimed else "impostor")
    for person, photo in PROBES[:2]:
        found = client.post(
            f"/v1/galleries/{script.gallery}/search",
            files=upload(person, photo),
            headers=headers,
        )
        assert found.status_code == 200, found.text
        label(client, script, found.json()["verification_id"], "genuine")
    for person, photo in PROBES[:2]:
        checked = client.post("/v1/liveness", files=upload(person, photo), headers=headers)
        assert checked.status_code == 200, checked.text
        label(client, script, checked.json()["verification_id"], "bona_fide")
    return script
