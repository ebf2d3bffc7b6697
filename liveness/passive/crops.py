"""Regions of one image that the passive signals look at."""

from __future__ import annotations

import cv2
import numpy as np

from liveness.mesh import Image

Box = tuple[float, float, float, float]


def expand(box: Box, factor: float, width: int, height: int) -> tuple[int, int, int, int]:
    left, top, right, bottom = box
    cx, cy = (left + right) / 2, (top + bottom) / 2
    half_w, half_h = (right - left) * factor / 2, (bottom - top) * factor / 2
    return (
        max(0, int(cx - half_w)),
        max(0, int(cy - half_h)),
        min(width, int(cx + half_w)),
        min(height, int(cy + half_h)),
    )


def face_crop(image: Image, box: Box, size: int = 128) -> Image:
    """The face (box × 1.1), resampled to ``size``² for the statistics that do not care
    about the native pixel grid."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = expand(box, 1.1, w, h)
    crop = image[y0:y1, x0:x1]
    if crop.size == 0:
        raise ValueError("the face box lies outside the image")
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def native_patch(image: Image, box: Box, max_side: int = 160) -> Image:
    """A square from the middle of the face at native resolution: resampling would
    blur away the moiré and pixel-grid frequencies the spectrum looks for."""
    h, w = image.shape[:2]
    left, top, right, bottom = box
    side = int(min(right - left, bottom - top, max_side) * 0.8)
    side = max(side - side % 2, 16)
    cx, cy = int((left + right) / 2), int((top + bottom) / 2)
    x0 = int(np.clip(cx - side // 2, 0, max(w - side, 0)))
    y0 = int(np.clip(cy - side // 2, 0, max(h - side, 0)))
    return image[y0 : y0 + side, x0 : x0 + side]
