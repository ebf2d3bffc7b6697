"""``faceprint enroll``: every photo type the API reads, what was passed over and why,
``--recursive``, a per-file ``--report``, and no native library chatter on stderr."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from PIL import Image

from tests.conftest import FACES_DIR, REPO

IDS = FACES_DIR / "identities"


def _as(photo: Path, fmt: str) -> bytes:
    out = io.BytesIO()
    Image.open(photo).convert("RGB").save(out, format=fmt)
    return out.getvalue()


def _folder(root: Path) -> Path:
    (root / "obama" / "2019").mkdir(parents=True)
    (root / "biden").mkdir()
    (root / "obama" / "obama1.jpg").symlink_to(IDS / "obama" / "obama1.jpg")
    (root / "obama" / "obama2.gif").write_bytes(_as(IDS / "obama" / "obama2.jpg", "GIF"))
    (root / "obama" / "obama3.tif").write_bytes(_as(IDS / "obama" / "obama3.jpg", "TIFF"))
    (root / "obama" / "2019" / "obama4.jpg").symlink_to(IDS / "obama" / "obama4.jpg")
    (root / "obama" / "notes.txt").write_text("not a photo")
    (root / "biden" / "biden1.jpg").symlink_to(IDS / "biden" / "biden1.jpg")
    (root / "biden" / "broken.png").write_bytes(b"this is not a png")
    (root / "stray.jpg").symlink_to(IDS / "biden" / "biden2.jpg")
    return root


def _enroll(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli.main", "enroll", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _report(path: Path) -> dict[str, tuple[str, str]]:
    with path.open() as handle:
        return {Path(r["path"]).name: (r["outcome"], r["reason"]) for r in csv.DictReader(handle)}


def test_enroll_reports_every_file(client: Any, admin_key: str, settings: Any, db_url: str,
                                   tmp_path: Path) -> None:  # fmt: skip
    headers = {"X-API-Key": admin_key}
    env = {**os.environ, "FACEPRINT_DATA_DIR": str(settings.data_dir),
           "FACEPRINT_DATABASE_URL": db_url, "COLUMNS": "200"}  # fmt: skip
    folder = _folder(tmp_path / "photos")

    gallery = client.post("/v1/galleries", json={"name": "flat"}, headers=headers).json()["id"]
    flat = tmp_path / "flat.csv"
    done = _enroll(env, str(folder), "--gallery", gallery, "--report", str(flat))
    assert done.returncode == 0, done.stderr
    assert "XNNPACK" not in done.stderr  # the TFLite runtime's INFO line is silenced
    assert "skipped" in done.stderr and "stray.jpg" in done.stderr and "--recursive" in done.stderr
    report = _report(flat)
    assert report["obama1.jpg"] == ("enrolled", "")
    assert report["obama2.gif"][0] == "enrolled" and report["obama3.tif"][0] == "enrolled"
    assert report["biden1.jpg"][0] == "enrolled"
    assert report["broken.png"][0] == "refused"
    assert report["stray.jpg"][0] == "skipped" and "top folder" in report["stray.jpg"][1]
    assert report["2019"][0] == "skipped" and "--recursive" in report["2019"][1]
    assert report["notes.txt"][0] == "skipped"
    assert "obama4.jpg" not in report
    assert "refused: " in done.stderr and "broken.png" in done.stderr  # the failure is named

    deep = client.post("/v1/galleries", json={"name": "deep"}, headers=headers).json()["id"]
    nested = tmp_path / "deep.csv"
    done = _enroll(env, str(folder), "--gallery", deep, "--recursive", "--report", str(nested))
    assert done.returncode == 0, done.stderr
    report = _report(nested)
    assert report["obama4.jpg"][0] == "enrolled" and "2019" not in report
    people = client.get(f"/v1/galleries/{deep}/subjects", headers=headers).json()["items"]
    # A deeper folder is the same person, not a subject of its own.
    assert {p["external_id"]: p["face_count"] for p in people} == {"obama": 4, "biden": 1}


def test_a_folder_with_no_person_folders_says_so(
    settings: Any, db_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, "FACEPRINT_DATA_DIR": str(settings.data_dir),
           "FACEPRINT_DATABASE_URL": db_url}  # fmt: skip
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.jpg").symlink_to(IDS / "obama" / "obama1.jpg")
    done = _enroll(env, str(tmp_path / "flat"), "--gallery", "00000000-0000-0000-0000-000000000000")
    assert done.returncode == 1
    assert "a.jpg: in the top folder" in done.stderr and "error: no photos found" in done.stderr
