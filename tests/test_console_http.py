"""The console's server side over plain HTTP: the pages and their headers, CORS, who
am I, the face image route, subject search and gallery counts."""

from __future__ import annotations

import io
from importlib import resources
from pathlib import Path

from PIL import Image
from sqlalchemy import select

from service.db.models import AuditLog
from service.http.console import CSP
from tests.conftest import ClientFactory, make_key


def _auth(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def _enrolled(client, key: str, photo: Path, external_id: str = "obama") -> tuple[str, str, str]:  # noqa: ANN001
    h = _auth(key)
    gallery = client.post("/v1/galleries", json={"name": "g"}, headers=h).json()["id"]
    subject = client.post(
        f"/v1/galleries/{gallery}/subjects", json={"external_id": external_id}, headers=h
    ).json()["id"]
    face = client.post(
        f"/v1/galleries/{gallery}/subjects/{subject}/faces",
        files={"image": (photo.name, photo.read_bytes(), "image/jpeg")},
        headers=h,
    )
    assert face.status_code == 201, face.text
    return gallery, subject, face.json()["id"]


def test_console_pages_ship_in_the_package_with_strict_headers(client) -> None:  # noqa: ANN001
    static = resources.files("service.http.console").joinpath("static")
    names = {p.name for p in static.iterdir()}
    assert {"index.html", "liveness.html", "app.js", "api.js", "app.css"} <= names
    for path in ("/console", "/console/liveness", "/console/static/app.js"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert r.headers["content-security-policy"] == CSP
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
    assert "'unsafe-inline'" not in CSP and "script-src 'self'" in CSP
    assert "frame-ancestors 'none'" in CSP
    page = client.get("/console").text
    # No inline script or style, no third-party origin: everything is a file of ours.
    assert "<script>" not in page and "style=" not in page and "http" not in page
    assert (
        client.get("/console/static/app.js").headers["content-type"].startswith("text/javascript")
    )
    etag = client.get("/console").headers["etag"]
    again = client.get("/console", headers={"If-None-Match": etag})
    assert again.status_code == 304
    missing = client.get("/console/static/nope.js")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert client.get("/console/static/..%2fapp.py").status_code == 404


def test_cors_is_off_by_default_and_follows_the_setting(make_client: ClientFactory) -> None:
    preflight = {
        "Origin": "https://capture.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-api-key",
    }
    off = make_client()
    r = off.options("/v1/liveness/sessions", headers=preflight)
    assert "access-control-allow-origin" not in r.headers
    on = make_client(cors_origins=["https://capture.example"])
    r = on.options("/v1/liveness/sessions", headers=preflight)
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://capture.example"
    assert "x-api-key" in r.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in r.headers
    other = on.options(
        "/v1/liveness/sessions", headers={**preflight, "Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in other.headers


def test_every_request_is_logged_with_its_principal(client, admin_key: str, caplog) -> None:  # noqa: ANN001
    import logging

    with caplog.at_level(logging.INFO, logger="faceprint.access"):
        client.get("/v1/me", headers=_auth(admin_key))
        client.get("/console")
    lines = [r for r in caplog.records if r.name == "faceprint.access"]
    me = client.get("/v1/me", headers=_auth(admin_key)).json()
    assert [getattr(r, "principal", None) for r in lines] == [f"api_key:{me['id']}", None]
    assert all(admin_key not in r.getMessage() + str(r.__dict__) for r in lines)


def test_me_tells_a_key_its_role_and_scope(client, admin_key: str) -> None:  # noqa: ANN001
    a = client.post("/v1/galleries", json={"name": "a"}, headers=_auth(admin_key)).json()["id"]
    client.post("/v1/galleries", json={"name": "b"}, headers=_auth(admin_key))
    me = client.get("/v1/me", headers=_auth(make_key(client, "client", [a]))).json()
    assert me["role"] == "client" and me["kind"] == "api_key" and me["name"] == "test-client"
    assert me["galleries"] == [{"id": a, "name": "a"}]
    assert client.get("/v1/me", headers=_auth(admin_key)).json()["galleries"] is None
    assert client.get("/v1/me").status_code == 401


def test_face_image_route_is_authenticated_uncached_scoped_and_audited(
    client,
    admin_key: str,
    faces_dir: Path,  # noqa: ANN001
) -> None:
    photo = faces_dir / "identities" / "obama" / "obama1.jpg"
    gallery, subject, face = _enrolled(client, admin_key, photo)
    url = f"/v1/galleries/{gallery}/subjects/{subject}/faces/{face}/image"
    operator = make_key(client, "operator", [gallery])
    original = client.get(url, headers=_auth(operator))
    assert original.status_code == 200
    assert original.headers["cache-control"] == "no-store"
    assert original.headers["content-type"] == "image/jpeg"
    assert original.content == photo.read_bytes()  # decrypted, byte for byte
    thumb = client.get(url, params={"size": "thumbnail"}, headers=_auth(operator))
    assert thumb.headers["cache-control"] == "no-store"
    small = Image.open(io.BytesIO(thumb.content))
    assert small.format == "JPEG" and max(small.size) <= 160
    assert len(thumb.content) < len(original.content) / 5
    # Another tenant cannot tell the face exists; a client may not read photos at all.
    other = client.post("/v1/galleries", json={"name": "other"}, headers=_auth(admin_key)).json()
    stranger = _auth(make_key(client, "operator", [other["id"]]))
    assert client.get(url, headers=stranger).status_code == 404
    assert client.get(url, headers=_auth(make_key(client, "client", [gallery]))).status_code == 403
    assert client.get(url).status_code == 401
    assert client.get(url, params={"size": "huge"}, headers=_auth(operator)).status_code == 422
    with client.app.state.container.sessionmaker() as session:
        reads = session.execute(
            select(AuditLog.actor_type, AuditLog.details).where(
                AuditLog.action == "face.image.read"
            )
        ).all()
    assert [d["variant"] for _, d in reads] == ["original", "thumbnail"]
    assert {t for t, _ in reads} == {"api_key"}


def test_subject_search_by_prefix_of_id_or_name(client, admin_key: str) -> None:  # noqa: ANN001
    h = _auth(admin_key)
    gallery = client.post("/v1/galleries", json={"name": "g"}, headers=h).json()["id"]
    for external_id, name in (("emp-100", "Ada Lovelace"), ("emp-200", "Alan Turing"),
                              ("x%y", None), ("xay", None)):  # fmt: skip
        client.post(
            f"/v1/galleries/{gallery}/subjects",
            json={"external_id": external_id, "display_name": name}, headers=h,
        )  # fmt: skip

    def found(q: str) -> list[str]:
        r = client.get(f"/v1/galleries/{gallery}/subjects", params={"q": q}, headers=h)
        assert r.status_code == 200, r.text
        return sorted(s["external_id"] for s in r.json()["items"])

    assert found("EMP-1") == ["emp-100"]
    assert found("al") == ["emp-200"]
    assert found("a") == ["emp-100", "emp-200"]
    assert found("x%") == ["x%y"]  # a typed % is a character, not a wildcard
    assert found("zzz") == []
    paged = client.get(
        f"/v1/galleries/{gallery}/subjects", params={"q": "emp", "limit": 1}, headers=h
    ).json()
    assert len(paged["items"]) == 1 and paged["next_cursor"]
    rest = client.get(
        f"/v1/galleries/{gallery}/subjects",
        params={"q": "emp", "limit": 1, "cursor": paged["next_cursor"]}, headers=h,
    ).json()  # fmt: skip
    both = {paged["items"][0]["external_id"], rest["items"][0]["external_id"]}
    assert both == {"emp-100", "emp-200"}
    empty = client.get(f"/v1/galleries/{gallery}/subjects", params={"q": ""}, headers=h)
    assert empty.status_code == 422


def test_gallery_list_counts_subjects_faces_and_templates(
    client,
    admin_key: str,
    faces_dir: Path,  # noqa: ANN001
) -> None:
    gallery, _, _ = _enrolled(client, admin_key, faces_dir / "identities" / "obama" / "obama1.jpg")
    client.post("/v1/galleries", json={"name": "empty"}, headers=_auth(admin_key))
    listed = client.get("/v1/galleries", headers=_auth(admin_key)).json()["items"]
    items = {g["name"]: g for g in listed}
    full = items["g"]
    assert (full["subject_count"], full["face_count"]) == (1, 1)
    assert full["template_counts"] == {full["model_id"]: 1}
    assert (items["empty"]["subject_count"], items["empty"]["face_count"]) == (0, 0)
    assert items["empty"]["template_counts"] == {}
    one = client.get(f"/v1/galleries/{gallery}", headers=_auth(admin_key)).json()
    assert one["face_count"] == 1 and one["open_set"]["subjects"] == 1
