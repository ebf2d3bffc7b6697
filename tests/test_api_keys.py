from __future__ import annotations

from sqlalchemy import func, select

from service.db.models import ApiKey, AuditLog
from tests.conftest import make_key


def test_key_authenticates_and_is_stored_hashed(client, admin_key: str) -> None:
    response = client.get("/v1/api-keys", headers={"X-API-Key": admin_key})
    assert response.status_code == 200
    items = response.json()["items"]
    assert len(items) == 1 and "key" not in items[0]
    with client.app.state.container.sessionmaker() as session:
        stored = session.scalars(select(ApiKey.key_hash)).all()
    assert admin_key not in stored and all(len(h) == 64 for h in stored)


def test_wrong_or_missing_key_is_401_problem(client) -> None:
    for headers in ({}, {"X-API-Key": "fp_nothere_abc"}, {"X-API-Key": "garbage"}):
        response = client.get("/v1/api-keys", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["type"].endswith("/unauthorized")


def test_non_admin_gets_403_and_nothing_is_written(client) -> None:
    operator = make_key(client, "operator")
    with client.app.state.container.sessionmaker() as session:
        before = session.scalar(select(func.count()).select_from(ApiKey))
    response = client.post(
        "/v1/api-keys", json={"name": "x", "role": "admin"}, headers={"X-API-Key": operator}
    )
    assert response.status_code == 403
    with client.app.state.container.sessionmaker() as session:
        assert session.scalar(select(func.count()).select_from(ApiKey)) == before


def test_create_shows_key_once_and_revoke_stops_it(client, admin_key: str) -> None:
    headers = {"X-API-Key": admin_key}
    created = client.post("/v1/api-keys", json={"name": "door", "role": "client"}, headers=headers)
    assert created.status_code == 201
    body = created.json()
    new_key = body["key"]
    assert client.get("/v1/api-keys", headers={"X-API-Key": new_key}).status_code == 403
    assert client.delete(f"/v1/api-keys/{body['id']}", headers=headers).status_code == 204
    assert client.get("/v1/api-keys", headers={"X-API-Key": new_key}).status_code == 401
    with client.app.state.container.sessionmaker() as session:
        actions = session.scalars(select(AuditLog.action)).all()
    assert "api_key.revoke" in actions


def test_malformed_body_is_422_problem(client, admin_key: str) -> None:
    response = client.post(
        "/v1/api-keys", json={"name": "", "role": "root"}, headers={"X-API-Key": admin_key}
    )
    assert response.status_code == 422
    assert response.json()["type"].endswith("/validation-error")


def test_pagination_walks_every_key(client, admin_key: str) -> None:
    for _ in range(4):
        make_key(client, "client")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/api-keys", params=params, headers={"X-API-Key": admin_key}).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5


def test_health_and_readiness(client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["migrations"] == "ok"
    assert "faceprint_http_requests_total" in client.get("/metrics").text
