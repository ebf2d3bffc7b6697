"""``/docs`` works with the network unplugged: the page names no outside URL, and every
file it loads is served by the app from the installed package."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

EXTERNAL = re.compile(r"""(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}""", re.IGNORECASE)
REFERENCE = re.compile(r"""(?:src|href)="([^"]+)\"""")


def test_docs_page_loads_nothing_from_outside(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert not EXTERNAL.findall(html), EXTERNAL.findall(html)
    references = REFERENCE.findall(html)
    assert len(references) == 3  # the stylesheet, the icon, the script
    expected = {".css": "text/css", ".js": "javascript", ".png": "image/png"}
    for reference in references:
        assert reference.startswith("/docs/assets/"), reference
        asset = client.get(reference)
        assert asset.status_code == 200, reference
        kind = next(v for k, v in expected.items() if reference.endswith(k))
        assert kind in asset.headers["content-type"], (reference, asset.headers["content-type"])
        assert len(asset.content) > 100
    bundle = client.get("/docs/assets/swagger-ui-bundle.js").text
    # What the page's script calls exists in the bundle it loads.
    assert "SwaggerUIBundle" in bundle and "presets" in bundle
    assert '"validatorUrl": null' in html  # no spec sent to the public validator
    assert client.get("/docs/assets/oauth2-redirect.html").status_code == 200


def test_the_page_points_at_the_served_schema(client: TestClient) -> None:
    html = client.get("/docs").text
    assert '"url": "/openapi.json"' in html
    schema = client.get("/openapi.json")
    assert schema.status_code == 200 and schema.json()["info"]["title"] == "Faceprint"
    assert "/docs" not in schema.json()["paths"]


def test_no_cdn_page_is_left(client: TestClient) -> None:
    # FastAPI's ReDoc page loads its script from a CDN: it is not served at all.
    assert client.get("/redoc").status_code == 404
    assert client.get("/docs/assets/no-such-file.js").status_code == 404
