"""PATCH /v1/verifications/{id}: a reviewer's ground truth on one decision."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from service.db.models import AuditLog
from tests import history_script
from tests.conftest import make_key


def test_an_operator_labels_a_decision_and_it_is_audited(client, admin_key: str) -> None:  # noqa: ANN001
    script = history_script.enroll_gallery(client, {"X-API-Key": admin_key})
    row = history_script.verify(client, script, "obama", "obama2.jpg", "obama")
    operator = {"X-API-Key": make_key(client, "operator", [script.gallery])}
    response = client.patch(
        f"/v1/verifications/{row}",
        json={"label": "genuine", "note": "checked the passport"},
        headers=operator,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["label"] == "genuine" and body["label_note"] == "checked the passport"
    assert body["labelled_by"].startswith("api_key:") and body["labelled_at"]
    again = client.get(f"/v1/verifications/{row}", headers=operator).json()
    assert again["label"] == "genuine" and again["labelled_by"] == body["labelled_by"]
    withdrawn = client.patch(f"/v1/verifications/{row}", json={"label": None}, headers=operator)
    assert withdrawn.status_code == 200
    assert withdrawn.json()["label"] is None and withdrawn.json()["labelled_by"] is None
    with client.app.state.container.sessionmaker() as session:
        audits = session.scalars(
            select(AuditLog).where(AuditLog.action == "verification.label").order_by(AuditLog.id)
        ).all()
    assert [(a.target_id, a.details["label"], a.details["previous"]) for a in audits] == [
        (row, "genuine", None),
        (row, None, "genuine"),
    ]


def test_labels_are_for_operators_within_their_galleries(client, admin_key: str) -> None:  # noqa: ANN001
    script = history_script.enroll_gallery(client, {"X-API-Key": admin_key})
    row = history_script.verify(client, script, "biden", "biden2.jpg", "obama")
    other = client.post("/v1/galleries", json={"name": "other"}, headers=script.headers).json()
    elsewhere = {"X-API-Key": make_key(client, "operator", [other["id"]])}
    a_client = {"X-API-Key": make_key(client, "client", [script.gallery])}
    body = {"label": "impostor"}
    forbidden = client.patch(f"/v1/verifications/{row}", json=body, headers=a_client)
    assert forbidden.status_code == 403
    assert forbidden.headers["content-type"].startswith("application/problem+json")
    hidden = client.patch(f"/v1/verifications/{row}", json=body, headers=elsewhere)
    assert hidden.status_code == 404
    unknown = client.patch(f"/v1/verifications/{uuid.uuid4()}", json=body, headers=script.headers)
    assert unknown.status_code == 404
    assert client.get(f"/v1/verifications/{row}", headers=script.headers).json()["label"] is None


def test_bad_labels_are_problems(client, admin_key: str) -> None:  # noqa: ANN001
    script = history_script.enroll_gallery(client, {"X-API-Key": admin_key})
    row = history_script.verify(client, script, "obama", "obama2.jpg", "obama")
    for bad in (
        {"label": "maybe"},
        {"note": "no label"},
        {"label": "genuine", "colour": "red"},
        {"label": "genuine", "note": "x" * 2001},
    ):
        response = client.patch(f"/v1/verifications/{row}", json=bad, headers=script.headers)
        assert response.status_code == 422, (bad, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    not_json = client.patch(
        f"/v1/verifications/{row}", content=b"{", headers={**script.headers,
        "content-type": "application/json"},
    )  # fmt: skip
    assert not_json.status_code == 422
    not_an_id = client.patch("/v1/verifications/xyz", json={"label": "genuine"},
                             headers=script.headers)  # fmt: skip
    assert not_an_id.status_code == 422
