"""The vendored BlazeFace files are the ones PROVENANCE.md names, and are package
data (importable through ``importlib.resources``, so a wheel carries them)."""

from __future__ import annotations

import hashlib
import re
from importlib import resources


def test_vendored_models_match_provenance() -> None:
    models = resources.files("indexing.detection.models")
    provenance = (models / "PROVENANCE.md").read_text()
    listed = dict(
        re.findall(r"`(face_detection_\w+\.tflite)` \|[^|]+\|[^|]+\| `([0-9a-f]{64})`", provenance)
    )
    assert set(listed) == {"face_detection_full_range.tflite", "face_detection_short_range.tflite"}
    for name, sha in listed.items():
        assert hashlib.sha256((models / name).read_bytes()).hexdigest() == sha
    assert "Apache License" in (models / "LICENSE").read_text()
