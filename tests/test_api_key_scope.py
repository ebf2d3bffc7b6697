"""A key can only hand out what it holds: role and galleries within its own; it sees and
revokes only keys within its scope."""

from __future__ import annotations

from tests.conftest import make_key


def _gallery(client, admin_key: str, name: str) -> str:  # noqa: ANN001
    response = client.post("/v1/galleries", json={"name": name}, headers={"X-API-Key": admin_key})
    assert response.status_code == 201
    return response.json()["id"]


def test_scoped_admin_cannot_mint_wider_keys(client, admin_key: str) -> None:
    a = _gallery(client, admin_key, "tenant-a")
    b = _gallery(client, admin_key, "tenant-b")
    scoped = {"X-API-Key": make_key(client, "admin", [a])}
    for body in (
        {"name": "all", "role": "client"},  # no galleries: every gallery
        {"name": "other", "role": "client", "galleries": [b]},
        {"name": "both", "role": "operator", "galleries": [a, b]},
    ):
        response = client.post("/v1/api-keys", json=body, headers=scoped)
        assert response.status_code == 403, body
        assert response.json()["type"].endswith("/forbidden")
    inside = client.post(
        "/v1/api-keys", json={"name": "in", "role": "client", "galleries": [a]}, headers=scoped
    )
    assert inside.status_code == 201 and inside.json()["galleries"] == [a]


def test_key_cannot_mint_a_higher_role(client, admin_key: str) -> None:
    # Operators cannot reach the route at all; the rank check is exercised through the
    # domain function the CLI and the route share.
    import pytest

    from service.core.principal import Principal, Role
    from service.core.problems import Forbidden
    from service.domain.auth import key_admin

    operator = Principal(kind="api_key", id="x", role=Role.operator)
    with client.app.state.container.sessionmaker() as session, pytest.raises(Forbidden):
        key_admin.create(session, name="up", role=Role.admin, galleries=None, actor=operator)


def test_scoped_admin_lists_and_revokes_only_keys_in_scope(client, admin_key: str) -> None:
    a = _gallery(client, admin_key, "tenant-a")
    b = _gallery(client, admin_key, "tenant-b")
    scoped = {"X-API-Key": make_key(client, "admin", [a])}
    other = client.post(
        "/v1/api-keys",
        json={"name": "b-key", "role": "client", "galleries": [b]},
        headers={"X-API-Key": admin_key},
    ).json()
    mine = client.post(
        "/v1/api-keys", json={"name": "a-key", "role": "client", "galleries": [a]}, headers=scoped
    ).json()
    listed = client.get("/v1/api-keys", headers=scoped).json()["items"]
    names = {item["name"] for item in listed}
    assert "a-key" in names
    assert "b-key" not in names and "test-admin" in names  # itself, scoped to [a]
    assert all(item["galleries"] is not None for item in listed)  # never the unrestricted one
    for target in (other["id"], _unrestricted_key_id(client, admin_key)):
        response = client.delete(f"/v1/api-keys/{target}", headers=scoped)
        assert response.status_code == 404
    assert client.get("/v1/api-keys", headers={"X-API-Key": other["key"]}).status_code == 403
    assert client.delete(f"/v1/api-keys/{mine['id']}", headers=scoped).status_code == 204
    assert client.get("/v1/api-keys", headers={"X-API-Key": admin_key}).status_code == 200


def _unrestricted_key_id(client, admin_key: str) -> str:  # noqa: ANN001
    items = client.get("/v1/api-keys", headers={"X-API-Key": admin_key}).json()["items"]
    return next(i["id"] for i in items if i["galleries"] is None and i["role"] == "admin")
