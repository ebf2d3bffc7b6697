"""MediaPipe Face Mesh and Iris models on ai-edge-litert.

Each runner owns one interpreter behind a lock (interpreters are not thread-safe);
build them once and share them. Crops are rotated squares taken with one affine warp,
and the model's points are mapped back through the inverse of the same warp.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from ai_edge_litert.interpreter import Interpreter
from numpy.typing import NDArray

from liveness import landmarks as lm

MODELS_DIR = Path(__file__).resolve().parent / "models"
FACE_MESH_MODEL = MODELS_DIR / "face_landmark.tflite"
IRIS_MODEL = MODELS_DIR / "iris_landmark.tflite"

# MediaPipe's crop margins: 1.5× the face box, 2.3× the eye-corner span.
FACE_ROI_SCALE = 1.5
IRIS_ROI_SCALE = 2.3
FACE_PRESENCE_THRESHOLD = 0.5

Image = NDArray[np.uint8]
Floats = NDArray[np.float64]


@dataclass(frozen=True)
class Roi:
    """A rotated square in image pixels: centre, side length, rotation in radians."""

    cx: float
    cy: float
    size: float
    angle: float = 0.0

    def to_crop(self, out: int) -> Floats:
        """2×3 affine matrix image → crop of ``out``×``out`` pixels."""
        s = out / self.size
        c, n = math.cos(-self.angle) * s, math.sin(-self.angle) * s
        return np.array(
            [
                [c, -n, out / 2 - c * self.cx + n * self.cy],
                [n, c, out / 2 - n * self.cx - c * self.cy],
            ]
        )

    def from_crop(self, points: Floats, out: int) -> Floats:
        """Map (N, ≥2) crop points back to image pixels; z is scaled like x."""
        s = self.size / out
        c, n = math.cos(self.angle), math.sin(self.angle)
        x = (points[:, 0] - out / 2) * s
        y = (points[:, 1] - out / 2) * s
        result = np.array(points, dtype=np.float64, copy=True)
        result[:, 0] = self.cx + c * x - n * y
        result[:, 1] = self.cy + n * x + c * y
        if result.shape[1] > 2:
            result[:, 2] = points[:, 2] * s
        return result


def roi_around(points: Floats, scale: float, a: int | None = None, b: int | None = None) -> Roi:
    """A square ROI around ``points`` (their bounding box's long side × ``scale``), turned
    so that the line from point ``a`` to point ``b`` is horizontal."""
    lo, hi = points[:, :2].min(axis=0), points[:, :2].max(axis=0)
    angle = 0.0
    if a is not None and b is not None:
        angle = math.atan2(points[b, 1] - points[a, 1], points[b, 0] - points[a, 0])
    centre = (lo + hi) / 2
    side = float(max(hi - lo)) * scale
    return Roi(float(centre[0]), float(centre[1]), max(side, 1.0), angle)


class _TfliteModel:
    def __init__(self, path: Path) -> None:
        self._interpreter = Interpreter(model_path=str(path), num_threads=1)
        self._interpreter.allocate_tensors()
        details = self._interpreter.get_input_details()[0]
        self._input = details["index"]
        self.size = int(details["shape"][1])
        self._outputs = [d["index"] for d in self._interpreter.get_output_details()]
        self._lock = threading.Lock()

    def crop(self, image: Image, roi: Roi, *, flip: bool = False) -> NDArray[np.float32]:
        patch = cv2.warpAffine(
            image,
            roi.to_crop(self.size),
            (self.size, self.size),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
        )
        if flip:
            patch = patch[:, ::-1]
        return (patch.astype(np.float32) / 255.0)[np.newaxis]

    def run(self, tensor: NDArray[np.float32]) -> list[NDArray[np.float32]]:
        with self._lock:
            self._interpreter.set_tensor(self._input, tensor)
            self._interpreter.invoke()
            return [self._interpreter.get_tensor(i).copy() for i in self._outputs]


@dataclass(frozen=True)
class MeshResult:
    points: Floats  # (468, 3) image pixels
    presence: float  # the model's face-presence probability


class FaceMesh:
    """468 face points from an RGB image and a face box (or the previous frame's mesh)."""

    def __init__(self, model_path: Path = FACE_MESH_MODEL) -> None:
        self._model = _TfliteModel(model_path)

    def _once(self, image: Image, roi: Roi) -> MeshResult:
        points_raw, flag = self._model.run(self._model.crop(image, roi))
        points = roi.from_crop(points_raw.reshape(-1, 3).astype(np.float64), self._model.size)
        presence = float(1.0 / (1.0 + math.exp(-float(flag.ravel()[-1]))))
        return MeshResult(points, presence)

    def __call__(
        self, image: Image, box: tuple[float, float, float, float], *, refine: bool = True
    ) -> MeshResult | None:
        """``box`` is (left, top, right, bottom). With ``refine`` the crop is taken a
        second time around the first pass's own points, upright on the eye line, as
        MediaPipe's tracker does; boxes from different detectors then give one mesh."""
        left, top, right, bottom = box
        corners = np.array([[left, top], [right, bottom]], np.float64)
        result = self._once(image, roi_around(corners, FACE_ROI_SCALE))
        if refine and result.presence >= FACE_PRESENCE_THRESHOLD:
            result = self._once(image, mesh_roi(result.points))
        if result.presence < FACE_PRESENCE_THRESHOLD:
            return None
        return result

    def track(self, image: Image, roi: Roi) -> MeshResult | None:
        """One pass on the ROI the previous frame's mesh gave (:func:`mesh_roi`): how
        MediaPipe follows a face between frames without running a detector."""
        result = self._once(image, roi)
        return result if result.presence >= FACE_PRESENCE_THRESHOLD else None


def mesh_roi(points: Floats) -> Roi:
    """The crop for the next frame: around this mesh, upright on its eye line."""
    return roi_around(points, FACE_ROI_SCALE, lm.RIGHT_EYE_OUTER, lm.LEFT_EYE_OUTER)


@dataclass(frozen=True)
class EyeResult:
    contour: Floats  # (71, 3): lids, then brow and halo rings
    iris: Floats  # (5, 3): centre, left, top, right, bottom


class IrisModel:
    """Eye contour and iris points for both eyes of a face mesh."""

    def __init__(self, model_path: Path = IRIS_MODEL) -> None:
        self._model = _TfliteModel(model_path)

    def _eye(self, image: Image, mesh: Floats, a: int, b: int, *, flip: bool) -> EyeResult:
        roi = roi_around(mesh[[a, b]], IRIS_ROI_SCALE, a=0, b=1)
        contour_raw, iris_raw = self._model.run(self._model.crop(image, roi, flip=flip))
        size = self._model.size
        contour = contour_raw.reshape(-1, 3).astype(np.float64)
        iris = iris_raw.reshape(-1, 3).astype(np.float64)
        if flip:
            # The model only knows one eye; the other is fed mirrored and mapped back.
            contour[:, 0] = size - contour[:, 0]
            iris[:, 0] = size - iris[:, 0]
        return EyeResult(roi.from_crop(contour, size), roi.from_crop(iris, size))

    def __call__(self, image: Image, mesh: Floats) -> tuple[EyeResult, EyeResult]:
        """(right eye, left eye) — the person's sides."""
        right = self._eye(image, mesh, lm.RIGHT_EYE_OUTER, lm.RIGHT_EYE_INNER, flip=False)
        left = self._eye(image, mesh, lm.LEFT_EYE_INNER, lm.LEFT_EYE_OUTER, flip=True)
        return right, left
