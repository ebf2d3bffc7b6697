"""A caller confined to some galleries cannot create a gallery: it could not see it."""

from __future__ import annotations

from sqlalchemy import func, select

from service.db.models import Gallery
from tests.conftest import make_key


def test_a_scoped_operator_cannot_create_galleries(client, admin_key: str) -> None:
    admin = {"X-API-Key": admin_key}
    mine = client.post("/v1/galleries", json={"name": "mine"}, headers=admin).json()["id"]
    for role in ("operator", "admin"):
        scoped = {"X-API-Key": make_key(client, role, [mine])}
        response = client.post("/v1/galleries", json={"name": "orphan"}, headers=scoped)
        assert response.status_code == 403, response.text
        assert response.json()["type"].endswith("/forbidden")
    with client.app.state.container.sessionmaker() as session:
        assert session.scalar(select(func.count()).select_from(Gallery)) == 1
    unscoped = {"X-API-Key": make_key(client, "operator")}
    assert client.post("/v1/galleries", json={"name": "ok"}, headers=unscoped).status_code == 201
