"""The detector protocol and what a detector returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from indexing.types import BBox, RGBImage


@dataclass(frozen=True)
class Detection:
    """One face. ``bbox`` follows dlib's convention (a HOG-sized box; ``right`` and
    ``bottom`` exclusive) whatever the detector, so the 5-point predictor and the
    chips behave the same. ``keypoints`` are the detector's own points in image
    pixels, when it has any; ``roll`` (degrees, positive = clockwise on screen) is
    estimated from them and used only to straighten the face before landmarking."""

    bbox: BBox
    score: float
    keypoints: NDArray[np.float32] | None = None
    roll: float | None = None
    # True when dlib's own detector drew the box (no refitting needed).
    dlib_box: bool = False
    # Mouth centre in image pixels, when the detector gives one (BlazeFace).
    mouth: NDArray[np.float32] | None = None
    # ArcFace-order 5 points measured by the detector itself (SCRFD); preferred over
    # the ones derived from dlib's predictor for ArcFace alignment and for reporting.
    five_points: NDArray[np.float32] | None = None


class Detector(Protocol):
    name: str

    def detect(self, image: RGBImage) -> list[Detection]:
        """All faces found in an RGB image, in any order."""
        ...


def largest_first(found: list[Detection]) -> list[Detection]:
    """``found`` sorted by box area, largest first: the order faces are reported in."""
    found.sort(key=lambda d: d.bbox.width * d.bbox.height, reverse=True)
    return found
