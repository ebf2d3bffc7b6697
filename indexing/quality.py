"""Face quality: size, sharpness, exposure, pose, and one overall score.

Measured on the aligned dlib chip (150×150, face at a fixed scale), so sharpness and
exposure do not depend on the photo's resolution. Thresholds (``QualityThresholds``
defaults; the face size limit comes from configuration):

- face size: box width in pixels ≥ ``min_face_px`` (80): smaller faces are upscaled
  into the chip and lose the detail the embedder needs;
- sharpness: variance of the Laplacian of the chip's grey face ≥ 15 (the shared
  photos measure 25–400; a 3-px Gaussian blur of them falls below 15);
- exposure: mean grey level in [0.20, 0.85] and at most 25% of the face clipped to
  black or white;
- pose: |yaw| ≤ 40° and |pitch| ≤ 30°, estimated from the landmarks (a coarse
  geometric estimate: ±10°);
- framing: at most 10% of the face box outside the photo (a face cut off by the
  frame is missing what the embedder reads).

The overall ``score`` in [0, 1] is the product of one term per aspect, each 1 when
comfortably inside its limit and falling to 0.5 at the limit; ``problems`` lists
every limit not met, in words a user can act on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from indexing.types import BBox, Landmarks, Quality

# Depth of the nose base in front of the eye plane, in eye distances (anthropometric
# average), and its drop below the eyes on a frontal face (measured on the shared
# photos with dlib's 5-point landmarks: median over the 18 identity photos).
_NOSE_DEPTH = 0.5
_NOSE_DROP_FRONTAL = 0.77


@dataclass(frozen=True)
class QualityThresholds:
    min_face_px: int = 56
    min_sharpness: float = 10.0
    min_brightness: float = 0.20
    max_brightness: float = 0.85
    max_clipped: float = 0.25
    max_yaw: float = 40.0
    max_pitch: float = 35.0
    max_outside: float = 0.10


def estimate_pose(landmarks: Landmarks) -> tuple[float, float]:
    """(yaw, pitch) in degrees from the eyes and the nose, in the face's own frame."""
    left_eye, right_eye, nose = (landmarks[i].astype(np.float64) for i in range(3))
    axis = right_eye - left_eye
    dist = float(np.hypot(*axis))
    if dist < 1e-6:
        return 0.0, 0.0
    ux = axis / dist
    uy = np.array([-ux[1], ux[0]])
    rel = nose - (left_eye + right_eye) / 2
    dx, dy = float(rel @ ux) / dist, float(rel @ uy) / dist
    yaw = math.degrees(math.atan2(dx, _NOSE_DEPTH))
    pitch = math.degrees(math.atan2(dy - _NOSE_DROP_FRONTAL, _NOSE_DEPTH))
    return yaw, pitch


def _term(value: float, limit: float) -> float:
    """1 well inside the limit, 0.5 at it, towards 0 beyond (a logistic in value/limit)."""
    x = min(max(8.0 * (value / limit - 1.0), -50.0), 50.0)  # exp() overflows past ~700
    return 1.0 / (1.0 + math.exp(x))


def outside_fraction(bbox: BBox, width: int, height: int) -> float:
    """Share of the box's area that lies outside a width × height photo."""
    area = bbox.width * bbox.height
    if area <= 0:
        return 0.0
    inside_w = max(0.0, min(bbox.right, width) - max(bbox.left, 0.0))
    inside_h = max(0.0, min(bbox.bottom, height) - max(bbox.top, 0.0))
    return 1.0 - inside_w * inside_h / area


def assess(
    bbox: BBox,
    landmarks: Landmarks,
    chip: NDArray[np.uint8],
    t: QualityThresholds,
    frame: tuple[int, int] | None = None,
) -> Quality:
    """``frame`` is the photo's (width, height), for the framing check."""
    grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    face = grey[h // 5 : h - h // 8, w // 5 : w - w // 5]  # the face, not the padding
    sharpness = float(cv2.Laplacian(face, cv2.CV_64F).var())
    brightness = float(face.mean()) / 255.0
    clipped = float(((face <= 8) | (face >= 247)).mean())
    yaw, pitch = estimate_pose(landmarks)
    face_px = float(min(bbox.width, bbox.height))
    outside = outside_fraction(bbox, *frame) if frame is not None else 0.0

    problems = []
    if face_px < t.min_face_px:
        problems.append(f"face too small: {face_px:.0f} px, need {t.min_face_px}")
    if sharpness < t.min_sharpness:
        problems.append(f"image too blurry: sharpness {sharpness:.0f}, need {t.min_sharpness:.0f}")
    if brightness < t.min_brightness:
        problems.append(f"face too dark: brightness {brightness:.2f}, need {t.min_brightness}")
    if brightness > t.max_brightness:
        problems.append(f"face too bright: brightness {brightness:.2f}, max {t.max_brightness}")
    if clipped > t.max_clipped:
        problems.append(f"face over- or under-exposed: {clipped:.0%} of it clipped")
    if abs(yaw) > t.max_yaw:
        problems.append(f"head turned sideways: yaw {yaw:.0f}°, max {t.max_yaw:.0f}°")
    if abs(pitch) > t.max_pitch:
        problems.append(f"head tilted up or down: pitch {pitch:.0f}°, max {t.max_pitch:.0f}°")
    if outside > t.max_outside:
        problems.append(
            f"face cut off by the frame: {outside:.0%} of it outside the photo, "
            f"max {t.max_outside:.0%}: use a photo with the whole face in it"
        )

    mid = (t.min_brightness + t.max_brightness) / 2
    half_range = (t.max_brightness - t.min_brightness) / 2
    score = (
        (1.0 - _term(face_px, t.min_face_px))
        * (1.0 - _term(sharpness, t.min_sharpness))
        * _term(abs(brightness - mid), half_range)
        * _term(clipped, t.max_clipped)
        * _term(abs(yaw), t.max_yaw)
        * _term(abs(pitch), t.max_pitch)
    )
    return Quality(
        face_px=face_px,
        sharpness=sharpness,
        brightness=brightness,
        yaw=yaw,
        pitch=pitch,
        score=score,
        problems=problems,
        outside=outside,
    )
