"""Detector names (configuration values) → detector objects."""

from __future__ import annotations

from pathlib import Path

from indexing.detection.base import Detection, Detector
from indexing.detection.blazeface import (
    FULL_RANGE,
    SHORT_RANGE,
    BlazeFaceDetector,
    BlazeFaceModel,
)
from indexing.detection.dlib_hog import DlibHogDetector
from indexing.errors import ModelUnavailable
from indexing.types import RGBImage

DETECTORS = {
    "blazeface": "BlazeFace full range + 2×2 tiles on large images + short-range fallback",
    "blazeface-full": "BlazeFace full range only, whole image",
    "blazeface-short": "BlazeFace short range only (faces filling the frame)",
    "dlib-hog": "dlib HOG, image as is",
    "dlib-hog-up1": "dlib HOG, image upsampled once (dlib's reference setting; 4× slower)",
    "scrfd": "InsightFace SCRFD from the pack in FACEPRINT_MODEL_DIR (onnxruntime)",
}


class _SingleBlazeFace:
    def __init__(self, name: str, model: BlazeFaceModel) -> None:
        self.name = name
        self._model = model

    def detect(self, image: RGBImage) -> list[Detection]:
        return self._model.run(image)


def build_detector(
    name: str,
    *,
    score_threshold: float = 0.5,
    model_dir: Path | None = None,
    intra_op_threads: int = 1,
) -> Detector:
    if name == "blazeface":
        return BlazeFaceDetector(score_threshold=score_threshold)
    if name == "blazeface-full":
        return _SingleBlazeFace(name, BlazeFaceModel(FULL_RANGE, score_threshold=score_threshold))
    if name == "blazeface-short":
        return _SingleBlazeFace(name, BlazeFaceModel(SHORT_RANGE, score_threshold=score_threshold))
    if name == "dlib-hog":
        return DlibHogDetector(upsample=0)
    if name == "dlib-hog-up1":
        return DlibHogDetector(upsample=1)
    if name == "scrfd":
        if model_dir is None:
            raise ModelUnavailable("scrfd", "FACEPRINT_MODEL_DIR is not set")
        from indexing.detection.scrfd import ScrfdDetector, find_scrfd_model

        return ScrfdDetector(
            find_scrfd_model(model_dir),
            score_threshold=score_threshold,
            intra_op_threads=intra_op_threads,
        )
    raise ValueError(f"unknown detector {name!r}; known: {', '.join(DETECTORS)}")
