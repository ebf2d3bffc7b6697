"""A live Faceprint server on a free port and Debian's headless Chromium driven by
Playwright. Nothing is downloaded: the browser is the system's `chromium`."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO

SCREENSHOTS = REPO / "docs" / "console"
PASSWORD = "correct horse battery staple"


_OPEN_PAGES: list[object] = []
FAILURES = Path(tempfile.gettempdir()) / "faceprint-browser-failures"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        # What the page showed when it failed, and its flash message, for the log.
        FAILURES.mkdir(exist_ok=True)
        for n, page in enumerate(_OPEN_PAGES):
            try:
                if page.is_closed():  # type: ignore[attr-defined]
                    continue
                path = FAILURES / f"{item.name}-{n}.png"
                page.screenshot(path=str(path))  # type: ignore[attr-defined]
                flash = page.inner_text("#flash")  # type: ignore[attr-defined]
                errors = getattr(page, "errors", [])
                report.sections.append(
                    ("browser", f"screenshot {path}; flash: {flash!r}; errors: {errors}")
                )
            except Exception as exc:  # the page may be gone; the report must still print
                report.sections.append(("browser", f"no screenshot: {exc}"))
    if report.when == "teardown":
        _OPEN_PAGES.clear()


@dataclass
class Live:
    url: str
    app: object

    @property
    def container(self):  # noqa: ANN201 - the app's Container
        return self.app.state.container  # type: ignore[attr-defined]

    def key(self, role: str, galleries: list[str] | None = None, name: str | None = None) -> str:
        from service.core.principal import Role
        from service.domain.auth import key_admin

        with self.container.sessionmaker() as session:
            new = key_admin.create(
                session,
                name=name or f"browser-{role}",
                role=Role(role),
                galleries=[uuid.UUID(g) for g in galleries] if galleries else None,
                actor=None,
            )
            session.commit()
            return new.plaintext

    def user(self, email: str, role: str = "admin") -> uuid.UUID:
        from service.core.principal import Role
        from service.domain.auth import users

        with self.container.sessionmaker() as session:
            user = users.create_user(
                session, passwords=self.container.auth.passwords, email=email,
                password=PASSWORD, role=Role(role), actor=None,
            )  # fmt: skip
            session.commit()
            return user.id


def _serve(app: object) -> tuple[str, object, threading.Thread]:
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the live server did not start")
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


@pytest.fixture
def live(request: pytest.FixtureRequest, settings, db_url: str, pipeline) -> Iterator[Live]:  # noqa: ANN001
    """The server; settings changed through ``indirect`` parametrisation, if any."""
    from service.http.app import create_app

    # The webhook page delivers to this same server (a 404 is a failed delivery).
    overrides = {"webhook_allow_http": True, "webhook_allow_private": True}
    settings = settings.model_copy(update={**overrides, **getattr(request, "param", {})})
    app = create_app(settings, database_url=db_url, pipeline=pipeline)
    url, server, thread = _serve(app)
    try:
        yield Live(url, app)
    finally:
        server.should_exit = True  # type: ignore[attr-defined]
        thread.join(timeout=30)


def chromium_path() -> str:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("the browser tests need Debian's chromium on PATH (apt-get install chromium)")
    return executable


@pytest.fixture(scope="session")
def playwright() -> Iterator[object]:
    """One Playwright driver for the session (a second sync driver cannot start while
    one runs)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright) -> Iterator[object]:  # noqa: ANN001
    browser = playwright.chromium.launch(
        executable_path=chromium_path(),
        headless=True,
        # CI runs as root in a container, where Chromium's sandbox cannot start.
        args=["--no-sandbox"],
    )
    try:
        yield browser
    finally:
        browser.close()


def new_page(browser, *, width: int = 1280, height: int = 800):  # noqa: ANN001, ANN201
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(15_000)
    _OPEN_PAGES.append(page)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    def on_console(msg) -> None:  # noqa: ANN001
        # A 4xx the page shows (a photo without a face) is logged by Chromium too; any
        # other error (a CSP refusal, a script error) fails the test.
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            errors.append(msg.text)

    page.on("console", on_console)
    page.errors = errors  # type: ignore[attr-defined]
    return page


def screenshot(page, name: str) -> Path:  # noqa: ANN001
    """The page as a PNG: into docs/console/ (the README's pictures) when
    CONSOLE_SCREENSHOTS=1, else a temporary folder, so a test run leaves the checkout
    as it found it."""
    folder = SCREENSHOTS if os.environ.get("CONSOLE_SCREENSHOTS") == "1" else _scratch()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


def _scratch() -> Path:
    return Path(tempfile.gettempdir()) / "faceprint-console-screenshots"
