"""The operator console: static pages under /console, shipped inside the package.

The pages are plain HTML, CSS and ES modules (no build step). They hold no server-side
logic of their own: every action is a call to the public /v1 API with the signed-in
principal's credentials, so the console can do exactly what that key or user can.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from service.core.problems import NotFound

# No inline script or style, nothing from another origin. `blob:` images are the
# thumbnails the pages fetch with credentials and show through object URLs;
# `mediastream:` is the camera preview of the liveness page.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; media-src 'self' blob: mediastream:; font-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
}
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# The pages a person opens; the rest are their assets under /console/static/.
_PAGES = {"": "index.html", "liveness": "liveness.html"}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def load_assets() -> dict[str, Asset]:
    """Every file of static/, read once when the app is built."""
    assets: dict[str, Asset] = {}
    root = resources.files(__package__).joinpath("static")
    for entry in root.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if not entry.is_file() or suffix not in _TYPES:
            continue
        body = entry.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        assets[entry.name] = Asset(body, _TYPES[suffix], etag)
    return assets


def _answer(request: Request, asset: Asset) -> Response:
    # `no-cache` revalidates on each load (an upgrade shows at once); the ETag keeps a
    # revalidation to a 304 without a body.
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache", "ETag": asset.etag}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


def install_console(app: FastAPI) -> None:
    assets = load_assets()
    router = APIRouter(prefix="/console", include_in_schema=False)

    @router.get("")
    async def index(request: Request) -> Response:
        return _answer(request, assets[_PAGES[""]])

    @router.get("/")
    async def index_slash() -> Response:
        return RedirectResponse("/console", status_code=308, headers=SECURITY_HEADERS)

    @router.get("/liveness")
    async def liveness(request: Request) -> Response:
        return _answer(request, assets[_PAGES["liveness"]])

    @router.get("/static/{name}")
    async def static(name: str, request: Request) -> Response:
        asset = assets.get(name)
        if asset is None:
            raise NotFound(f"no console file {name}")
        return _answer(request, asset)

    app.include_router(router)
