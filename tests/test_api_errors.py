"""Every v1 route, every way a request can be wrong: the right problem+json status, and
nothing written to the database."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from sqlalchemy import text

from tests.conftest import FACES_DIR, make_key

PHOTO = FACES_DIR / "identities" / "biden" / "biden1.jpg"
TABLES = (
    "galleries", "subjects", "faces", "templates", "verifications", "jobs", "api_keys",
    "webhooks", "liveness_sessions",
)  # fmt: skip


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    role: str  # the least role that may call it
    body: str  # "json", "image" or "none"
    json: dict | None = None


ROUTES = [
    Route("POST", "/v1/galleries", "operator", "json", {"name": "x"}),
    Route("GET", "/v1/galleries", "operator", "none"),
    Route("GET", "/v1/galleries/{g}", "operator", "none"),
    Route("DELETE", "/v1/galleries/{g}", "operator", "none"),
    Route("POST", "/v1/galleries/{g}/subjects", "operator", "json", {"external_id": "new"}),
    Route("GET", "/v1/galleries/{g}/subjects", "operator", "none"),
    Route("GET", "/v1/galleries/{g}/subjects/{s}", "operator", "none"),
    Route("PATCH", "/v1/galleries/{g}/subjects/{s}", "operator", "json", {"display_name": "y"}),
    Route("DELETE", "/v1/galleries/{g}/subjects/{s}", "operator", "none"),
    Route("POST", "/v1/galleries/{g}/subjects/{s}/faces", "operator", "image"),
    Route("GET", "/v1/galleries/{g}/subjects/{s}/faces", "operator", "none"),
    Route("GET", "/v1/galleries/{g}/subjects/{s}/faces/{f}", "operator", "none"),
    Route("DELETE", "/v1/galleries/{g}/subjects/{s}/faces/{f}", "operator", "none"),
    Route("POST", "/v1/galleries/{g}/search", "client", "image"),
    Route("POST", "/v1/verify", "client", "image"),
    Route("POST", "/v1/detect", "client", "image"),
    Route("GET", "/v1/verifications", "client", "none"),
    Route("POST", "/v1/api-keys", "admin", "json", {"name": "k", "role": "client"}),
    Route("GET", "/v1/api-keys", "admin", "none"),
]
GALLERY_ROUTES = [r for r in ROUTES if "{g}" in r.path]


@pytest.fixture(scope="module")
def client(pg_admin_uri: str, pipeline, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN001, ANN201
    """One app and database for the module: every test here checks that its failing
    request wrote nothing, so they can share the same starting state."""
    from fastapi.testclient import TestClient
    from pydantic import SecretStr

    from service.core.settings import Settings
    from service.db.embedded import _sqlalchemy_url
    from service.http.app import create_app
    from tests.conftest import TEMPLATE_DB, _drop_database, _make_database

    name = _make_database(pg_admin_uri, TEMPLATE_DB)
    url = _sqlalchemy_url(pg_admin_uri, name)
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), database_url=SecretStr(url))
    try:
        with TestClient(create_app(settings, database_url=url, pipeline=pipeline)) as test_client:
            yield test_client
    finally:
        _drop_database(pg_admin_uri, name)


@pytest.fixture(scope="module")
def admin_key(client) -> str:  # noqa: ANN001
    return make_key(client, "admin")


@pytest.fixture(scope="module")
def world(client, admin_key: str) -> dict:
    """Two galleries (A and B), each with one subject and one enrolled face."""
    headers = {"X-API-Key": admin_key}
    ids: dict = {}
    for name in ("a", "b"):
        g = client.post("/v1/galleries", json={"name": name}, headers=headers).json()["id"]
        s = client.post(
            f"/v1/galleries/{g}/subjects", json={"external_id": "p"}, headers=headers
        ).json()["id"]
        f = client.post(
            f"/v1/galleries/{g}/subjects/{s}/faces",
            files={"image": ("p.jpg", PHOTO.read_bytes())},
            headers=headers,
        )
        assert f.status_code == 201, f.text
        ids[name] = {"g": g, "s": s, "f": f.json()["id"]}
    return ids


def counts(client) -> dict[str, int]:
    with client.app.state.container.engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}  # noqa: S608


def call(client, route: Route, ids: dict, headers: dict, *, body: object = "default"):  # noqa: ANN201
    path = route.path.format(**ids)
    kwargs: dict = {"headers": headers}
    if body == "default":
        if route.body == "json":
            kwargs["json"] = route.json
        elif route.body == "image":
            kwargs["files"] = {"image": ("p.jpg", PHOTO.read_bytes())}
            if route.path == "/v1/verify":
                kwargs["data"] = {"gallery": ids["g"], "subject": ids["s"]}
    else:
        kwargs.update(body)  # type: ignore[arg-type]
    return client.request(route.method, path, **kwargs)


def assert_problem(response, status: int) -> None:
    assert response.status_code == status, (response.request.url, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["type"].startswith("https://") and body["detail"]


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_no_credentials_is_401(client, world: dict, route: Route) -> None:
    before = counts(client)
    assert_problem(call(client, route, world["a"], {}), 401)
    assert counts(client) == before


@pytest.mark.parametrize(
    "route", [r for r in ROUTES if r.role != "client"], ids=lambda r: f"{r.method} {r.path}"
)
def test_wrong_role_is_403(client, world: dict, route: Route) -> None:
    weaker = "client" if route.role == "operator" else "operator"
    key = make_key(client, weaker)
    before = counts(client)
    assert_problem(call(client, route, world["a"], {"X-API-Key": key}), 403)
    assert counts(client) == before


@pytest.mark.parametrize("route", GALLERY_ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_other_tenants_gallery_is_404(client, world: dict, route: Route) -> None:
    """A key granted gallery A sees gallery B as nonexistent, whatever its role."""
    key = make_key(client, route.role, [world["a"]["g"]])
    before = counts(client)
    assert_problem(call(client, route, world["b"], {"X-API-Key": key}), 404)
    assert counts(client) == before


def test_verify_in_other_tenants_gallery_is_404(client, world: dict) -> None:
    key = make_key(client, "client", [world["a"]["g"]])
    before = counts(client)
    response = client.post(
        "/v1/verify",
        files={"image": ("p.jpg", PHOTO.read_bytes())},
        data={"gallery": world["b"]["g"], "subject": world["b"]["s"]},
        headers={"X-API-Key": key},
    )
    assert_problem(response, 404)
    assert counts(client) == before


@pytest.mark.parametrize(
    "route", [r for r in ROUTES if r.body == "json"], ids=lambda r: f"{r.method} {r.path}"
)
def test_malformed_json_is_422(client, world: dict, admin_key: str, route: Route) -> None:
    before = counts(client)
    for bad in ({"json": {"unexpected": True}}, {"content": b"{not json", "headers": None}):
        kwargs = dict(bad)
        headers = {"X-API-Key": admin_key}
        if kwargs.pop("headers", "keep") is None:
            headers["content-type"] = "application/json"
        assert_problem(call(client, route, world["a"], headers, body=kwargs), 422)
    assert counts(client) == before


IMAGE_ROUTES = [r for r in ROUTES if r.body == "image"]


def _image_call(client, route: Route, ids: dict, key: str, files: dict):  # noqa: ANN202
    data = {"gallery": ids["g"], "subject": ids["s"]} if route.path == "/v1/verify" else None
    return client.request(
        route.method, route.path.format(**ids), files=files, data=data,
        headers={"X-API-Key": key},
    )  # fmt: skip


@pytest.mark.parametrize("route", IMAGE_ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_oversized_upload_is_413(client, world: dict, admin_key: str, route: Route) -> None:
    limit = client.app.state.container.settings.max_upload_bytes
    before = counts(client)
    big = {"image": ("big.jpg", b"\xff\xd8\xff" + b"\0" * (limit + 10))}
    assert_problem(_image_call(client, route, world["a"], admin_key, big), 413)
    assert counts(client) == before


@pytest.mark.parametrize("route", IMAGE_ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_not_an_image_is_415(client, world: dict, admin_key: str, route: Route) -> None:
    before = counts(client)
    files = {"image": ("notes.txt", b"these are not the pixels you are looking for")}
    assert_problem(_image_call(client, route, world["a"], admin_key, files), 415)
    text_body = client.request(
        route.method, route.path.format(**world["a"]), content=b"plain",
        headers={"X-API-Key": admin_key, "content-type": "text/plain"},
    )  # fmt: skip
    assert_problem(text_body, 415)
    assert counts(client) == before


@pytest.mark.parametrize("route", IMAGE_ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_image_without_a_face_is_422_no_face(
    client, world: dict, admin_key: str, route: Route
) -> None:
    import io

    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((240, 320, 3), 128, np.uint8)).save(buffer, format="PNG")
    before = counts(client)
    files = {"image": ("grey.png", buffer.getvalue())}
    response = _image_call(client, route, world["a"], admin_key, files)
    assert_problem(response, 422)
    assert response.json()["type"].endswith("/no-face")
    assert counts(client) == before


def test_image_as_base64_json_is_accepted(client, world: dict, admin_key: str) -> None:
    import base64

    response = client.post(
        "/v1/detect",
        json={"image_base64": base64.b64encode(PHOTO.read_bytes()).decode()},
        headers={"X-API-Key": admin_key},
    )
    assert response.status_code == 200 and len(response.json()["faces"]) == 1
    bad = client.post("/v1/detect", json={"image_base64": "%%%"}, headers={"X-API-Key": admin_key})
    assert_problem(bad, 400)


def test_unknown_ids_are_404(client, world: dict, admin_key: str) -> None:
    headers = {"X-API-Key": admin_key}
    nobody = uuid.uuid4()
    assert_problem(client.get(f"/v1/galleries/{nobody}", headers=headers), 404)
    g = world["a"]["g"]
    assert_problem(client.get(f"/v1/galleries/{g}/subjects/{nobody}", headers=headers), 404)
    other_subject = world["b"]["s"]
    assert_problem(client.get(f"/v1/galleries/{g}/subjects/{other_subject}", headers=headers), 404)


def test_duplicate_external_id_is_409(client, world: dict, admin_key: str) -> None:
    g = world["a"]["g"]
    response = client.post(
        f"/v1/galleries/{g}/subjects", json={"external_id": "p"}, headers={"X-API-Key": admin_key}
    )
    assert_problem(response, 409)


def test_same_photo_twice_is_409(client, world: dict, admin_key: str) -> None:
    a = world["a"]
    before = counts(client)
    response = client.post(
        f"/v1/galleries/{a['g']}/subjects/{a['s']}/faces",
        files={"image": ("p.jpg", PHOTO.read_bytes())},
        headers={"X-API-Key": admin_key},
    )
    assert_problem(response, 409)
    assert counts(client) == before
