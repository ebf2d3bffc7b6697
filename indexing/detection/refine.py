"""dlib HOG run on a small crop around a face another detector found.

Two uses: confirming a face that only a tile saw, and snapping a BlazeFace box to
the exact box dlib's HOG detector would give, which is the box dlib's 5-point
predictor and ResNet were built around. The crop is resized so the face is a fixed
size, which bounds the cost (≈ 1 ms at 90 px) whatever the photo's resolution.
"""

from __future__ import annotations

import cv2
import numpy as np

from indexing.detection.dlib_hog import DlibHogDetector
from indexing.types import BBox, RGBImage


def hog_box_near(
    hog: DlibHogDetector, image: RGBImage, box: BBox, *, face_px: float, margin: float
) -> BBox | None:
    """The HOG box nearest ``box``'s centre in a crop of ``margin`` box-widths either
    side, in image pixels; None when HOG finds nothing there."""
    cx, cy = (box.left + box.right) / 2, (box.top + box.bottom) / 2
    r = box.width * margin
    h, w = image.shape[:2]
    top, left = max(0, int(cy - r)), max(0, int(cx - r))
    crop = image[top : min(h, int(cy + r)), left : min(w, int(cx + r))]
    if crop.shape[0] < 2 or crop.shape[1] < 2:
        return None
    scale = face_px / max(box.width, 1.0)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    resized = np.ascontiguousarray(cv2.resize(crop, size, interpolation=cv2.INTER_LINEAR))
    found = hog.detect(resized)
    if not found:
        return None
    ccx, ccy = (cx - left) * scale, (cy - top) * scale
    best = min(
        found,
        key=lambda d: np.hypot(
            (d.bbox.left + d.bbox.right) / 2 - ccx, (d.bbox.top + d.bbox.bottom) / 2 - ccy
        ),
    ).bbox
    return BBox(
        best.left / scale + left,
        best.top / scale + top,
        best.right / scale + left,
        best.bottom / scale + top,
    )
