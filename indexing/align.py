"""Aligned face chips, cut the way each model was trained on.

- ``dlib-150``: ``dlib.get_face_chip`` (150 px, padding 0.25) from dlib's 5 points.
- ``arcface-112``: least-squares similarity transform of the 5 landmarks onto
  InsightFace's 112×112 ArcFace template.
"""

from __future__ import annotations

import cv2
import dlib
import numpy as np
from numpy.typing import NDArray

from indexing.landmarks import FaceShape
from indexing.types import BBox, Landmarks, RGBImage

DLIB_150 = "dlib-150"
ARCFACE_112 = "arcface-112"
ALIGNMENTS = (DLIB_150, ARCFACE_112)

# InsightFace's arcface_dst, for 112×112 crops.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


def dlib_chip(image: RGBImage, bbox: BBox, shape: FaceShape) -> NDArray[np.uint8]:
    rect = dlib.rectangle(
        round(bbox.left), round(bbox.top), round(bbox.right) - 1, round(bbox.bottom) - 1
    )
    parts = dlib.points(
        [dlib.point(round(float(x)), round(float(y))) for x, y in shape.dlib_points]
    )
    return np.asarray(dlib.get_face_chip(image, dlib.full_object_detection(rect, parts), 150, 0.25))


def similarity_transform(src: Landmarks, dst: NDArray[np.float64]) -> NDArray[np.float64]:
    """Umeyama's least-squares rotation + uniform scale + translation, src → dst (2×3)."""
    src = np.asarray(src, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rot = u @ sign @ vt
    var = (s0**2).sum() / len(src)
    scale = float((sig * np.diag(sign)).sum() / var) if var > 0 else 1.0
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def arcface_chip(image: RGBImage, landmarks: Landmarks) -> NDArray[np.uint8]:
    m = similarity_transform(landmarks, ARCFACE_TEMPLATE)
    return cv2.warpAffine(image, m, (112, 112), flags=cv2.INTER_LINEAR, borderValue=0)


def chip(image: RGBImage, bbox: BBox, shape: FaceShape, alignment: str) -> NDArray[np.uint8]:
    if alignment == DLIB_150:
        return dlib_chip(image, bbox, shape)
    if alignment == ARCFACE_112:
        return arcface_chip(image, shape.landmarks)
    raise ValueError(f"unknown alignment {alignment!r}; known: {', '.join(ALIGNMENTS)}")
