"""``faceprint enroll DIR`` and ``faceprint reindex`` as real processes against the
test's database: progress, the final summary, and the reindex report."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy import text

from tests.conftest import FACES_DIR, REPO

IDS = FACES_DIR / "identities"


def _blank_jpeg() -> bytes:
    ramp = np.linspace(40, 200, 640, dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(np.broadcast_to(ramp[None, :, None], (480, 640, 3)).copy()).save(
        out, format="JPEG"
    )
    return out.getvalue()


def _folder(root: Path) -> Path:
    """person/photo.jpg, linking the shared photos (never copying them), plus a photo with
    no face, a face cut off by the frame and a file that is not an image."""
    root.mkdir()
    for person, names in {
        "biden": ["biden1.jpg", "biden2.jpg"],
        "kit_harington": ["kit1.jpg", "kit2.jpg"],
        "obama": ["obama1.jpg"],
    }.items():
        (root / person).mkdir()
        for name in names:
            (root / person / name).symlink_to(IDS / person / name)
    # A face cut off by the frame: refused as low quality.
    (root / "obama" / "partial.jpg").symlink_to(IDS.parent / "hard" / "obama_partial_face.jpg")
    (root / "nobody").mkdir()
    (root / "nobody" / "wall.jpg").write_bytes(_blank_jpeg())
    (root / "nobody" / "notes.png").write_bytes(b"this is not a png")
    return root


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli.main", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_bulk_enroll_then_reindex_from_the_command_line(
    client: Any, admin_key: str, settings: Any, db_url: str, tmp_path: Path
) -> None:
    headers = {"X-API-Key": admin_key}
    body = {"name": "bulk", "model_id": "dlib-resnet-v1"}
    gallery = client.post("/v1/galleries", json=body, headers=headers).json()["id"]
    env = {
        **os.environ,
        "FACEPRINT_DATA_DIR": str(settings.data_dir),
        "FACEPRINT_DATABASE_URL": db_url,
        "COLUMNS": "200",
    }
    folder = _folder(tmp_path / "photos")

    first = _cli(env, "enroll", str(folder), "--gallery", gallery, "--batch-size", "8")
    assert first.returncode == 0, first.stderr
    out = first.stderr
    assert "enrolled" in out and "faces/s" in out

    def row(label: str, text_: str) -> int:
        line = next(ln for ln in text_.splitlines() if f" {label} " in ln)
        return int(line.replace("│", " ").split()[-1])

    assert row("enrolled", out) == 5
    assert row("no face", out) == 1
    assert row("low quality", out) == 1
    assert row("unreadable image", out) == 1
    assert row("duplicates", out) == 0

    again = _cli(env, "enroll", str(folder), "--gallery", gallery)
    assert again.returncode == 0, again.stderr
    # Enrolled and failed photos alike are already stored: all refused as duplicates.
    assert row("duplicates", again.stderr) == 7 and row("enrolled", again.stderr) == 0

    subjects = client.get(f"/v1/galleries/{gallery}/subjects", headers=headers).json()["items"]
    assert sorted(s["external_id"] for s in subjects) == [
        "biden", "kit_harington", "nobody", "obama"
    ]  # fmt: skip

    upgraded = _cli(
        env, "reindex", "start", "--gallery", gallery, "--to-model", "dlib-resnet-v1-onnx"
    )
    assert upgraded.returncode == 0, upgraded.stderr
    assert "coverage" in upgraded.stderr and "shadow comparison" in upgraded.stderr
    assert "faceprint reindex activate" in upgraded.stderr
    # The flags of the previous release still work, with a deprecation warning.
    switched = _cli(env, "reindex", "--gallery", gallery, "--activate")
    assert switched.returncode == 0 and "dlib-resnet-v1-onnx" in switched.stderr
    assert "deprecated" in switched.stderr
    status = _cli(env, "reindex", "status", "--gallery", gallery)
    assert status.returncode == 0 and "previous" in status.stderr
    with client.app.state.container.engine.connect() as conn:
        active = conn.execute(
            text("SELECT active_model_id, previous_model_id FROM galleries WHERE id = :g"),
            {"g": gallery},
        ).one()
        per_model = dict(
            conn.execute(text("SELECT model_id, count(*) FROM templates GROUP BY model_id")).all()
        )
    assert tuple(active) == ("dlib-resnet-v1-onnx", "dlib-resnet-v1")
    assert per_model == {"dlib-resnet-v1": 5, "dlib-resnet-v1-onnx": 5}
    refused = _cli(env, "reindex", "--gallery", gallery, "--activate")
    assert refused.returncode == 1 and "no reindex" in refused.stderr
