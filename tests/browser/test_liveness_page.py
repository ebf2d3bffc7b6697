"""/console/liveness in Chromium with a fake camera playing clips made from a shared
photo: the face re-rendered as a 3-D head turning (passes), and the same photo turned
as a flat sheet, as a print or a phone held up to the camera (fails on depth).

A recorded clip cannot follow a random challenge: the session asks 2-4 random actions
in a random order. So the test fixes this session's challenge to the actions the clips
perform (turn left, then right), by rewriting the session row when the page creates it,
exactly as tests/test_liveness_api.py does for its frame sequences. Nothing else about
the session or its checks is changed; clips cannot blink or smile, and are not asked to.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import update

from liveness import synthesis
from service.db.models import LivenessSession
from tests.browser.conftest import Live, chromium_path, screenshot
from tests.browser.test_console import wait_rendered
from tests.browser.test_console_roles import _api, _gallery_with_obama

PHOTO = Path("identities") / "obama" / "obama1.jpg"
CHALLENGE = ["turn_left", "turn_right"]
FPS = 10


def _yaws() -> list[float]:
    """A second facing the camera (the session's baseline), a turn to the person's left
    and back, a turn to the right and back: positive yaw is turn_left."""
    ramp = list(np.linspace(0, 32, 12))
    return [0.0] * 10 + ramp + ramp[::-1] + [-y for y in ramp] + [-y for y in ramp[::-1]]


def _write_y4m(path: Path, frames: list[np.ndarray]) -> None:
    h, w = frames[0].shape[:2]
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{w} H{h} F{FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in frames:
            out.write(b"FRAME\n")
            out.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes())


def _camera_frame(live: Live, faces_dir: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    image = np.asarray(Image.open(faces_dir / PHOTO).convert("RGB"))
    pipeline = live.container.components.pipeline
    b = pipeline.detect_image(image, max_faces=1)[0].bbox
    frame = synthesis.camera_frame(image, (b.left, b.top, b.right, b.bottom))
    f = pipeline.detect_image(frame, max_faces=1)[0].bbox
    return frame, (f.left, f.top, f.right, f.bottom)


def _head_clip(live: Live, faces_dir: Path, path: Path) -> Path:
    frame, box = _camera_frame(live, faces_dir)
    mesh = live.container.liveness.extractor.mesh(frame, box).points
    _write_y4m(path, [synthesis.render_pose(frame, mesh, yaw) for yaw in _yaws()])
    return path


def _planar_clip(live: Live, faces_dir: Path, path: Path) -> Path:
    frame, _ = _camera_frame(live, faces_dir)
    centre = (frame.shape[1] / 2, frame.shape[0] / 2)
    _write_y4m(path, [synthesis.planar_pose(frame, centre, yaw * 1.3) for yaw in _yaws()])
    return path


@pytest.fixture
def camera_browser(playwright, tmp_path: Path) -> Iterator:  # noqa: ANN001
    """A Chromium whose camera plays the clip written to ``tmp_path/clip.y4m``
    (launched once the clip is written: Chromium reads the file when it starts)."""
    clip = tmp_path / "clip.y4m"
    browsers = []

    def launch():  # noqa: ANN202
        browser = playwright.chromium.launch(
            executable_path=chromium_path(),
            headless=True,
            args=[
                "--no-sandbox",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={clip}",
            ],
        )
        browsers.append(browser)
        return browser

    yield clip, launch
    for browser in browsers:
        browser.close()


def _fix_challenge(live: Live):  # noqa: ANN202
    def handle(route) -> None:  # noqa: ANN001
        response = route.fetch()
        body = response.json()
        with live.container.sessionmaker() as s:
            row = s.get(LivenessSession, uuid.UUID(body["id"]))
            machine = dict(row.state["machine"], actions=CHALLENGE)
            s.execute(
                update(LivenessSession)
                .where(LivenessSession.id == row.id)
                .values(actions=CHALLENGE, state=dict(row.state, machine=machine))
            )
            s.commit()
        route.fulfill(response=response, json=dict(body, actions=CHALLENGE))

    return handle


def _run_session(live: Live, browser, key: str, name: str, external_id: str = "") -> dict:  # noqa: ANN001
    context = browser.new_context(viewport={"width": 1280, "height": 800}, permissions=["camera"])
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(live.url + "/console")
    page.wait_for_selector("body[data-ready=true]")
    page.fill("input[name=identity]", key)
    page.press("input[name=identity]", "Enter")
    wait_rendered(page, "#/test")
    page.goto(live.url + "/console/liveness")  # same tab: the key is still in its storage
    page.wait_for_selector("body[data-ready=true]")
    page.route("**/v1/liveness/sessions", _fix_challenge(live))
    if external_id:
        page.fill("input[name=external_id]", external_id)
    page.click("#start")
    page.wait_for_selector("#steps li")
    page.wait_for_selector("body[data-finished]", timeout=120_000)
    screenshot(page, name)
    outcome = {
        "status": page.get_attribute("body", "data-finished"),
        "decision": page.inner_text("#live-decision"),
        "reasons": page.locator("#live-reasons li").all_inner_texts(),
        "verify": page.inner_text("#live-verify") if page.locator("#live-verify").count() else "",
        "errors": errors,
    }
    context.close()
    return outcome


def test_a_turning_head_passes_and_verifies(live: Live, camera_browser, faces_dir: Path) -> None:  # noqa: ANN001
    clip, launch = camera_browser
    gallery = _gallery_with_obama(_api(live, live.key("admin")), "door", faces_dir)
    _head_clip(live, faces_dir, clip)
    outcome = _run_session(live, launch(), live.key("client", [gallery]), "liveness", "obama")
    assert outcome["status"] == "passed", outcome
    assert outcome["decision"] == "Passed"
    assert outcome["verify"].startswith("Same person"), outcome
    assert outcome["errors"] == []


def test_a_photo_moved_as_a_plane_fails_on_depth(
    live: Live,
    camera_browser,
    faces_dir: Path,  # noqa: ANN001
) -> None:
    clip, launch = camera_browser
    _planar_clip(live, faces_dir, clip)
    outcome = _run_session(live, launch(), live.key("client"), "liveness-planar")
    assert outcome["status"] == "failed", outcome
    assert "planar_motion" in outcome["reasons"], outcome
    assert outcome["errors"] == []
