"""Per-frame measurements for a challenge session: one RGB frame and a face box in,
plain numbers (and the parallax landmarks) out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from liveness import geometry as geo
from liveness import landmarks as lm
from liveness.mesh import FaceMesh, Image, IrisModel, MeshResult, Roi, mesh_roi


@dataclass(frozen=True)
class FrameFeatures:
    ear: float  # mean eye aspect ratio of both eyes
    # Mean of both eyes, 0 = lids closed over the iris; None when the frame was measured
    # without the iris model (only a blink reads it: see ``needs_iris``).
    iris_visibility: float | None
    mar: float  # mouth aspect ratio
    smile: float  # mouth width over eye span
    yaw: float  # degrees, + = the person's left
    pitch: float  # degrees, + = up
    scale: float  # eye span over image width
    points: tuple[tuple[float, float], ...]  # PARALLAX_POINTS in image pixels

    def as_dict(self) -> dict[str, Any]:
        return {
            "ear": round(self.ear, 4),
            "iris_visibility": (
                None if self.iris_visibility is None else round(self.iris_visibility, 4)
            ),
            "mar": round(self.mar, 4),
            "smile": round(self.smile, 4),
            "yaw": round(self.yaw, 2),
            "pitch": round(self.pitch, 2),
            "scale": round(self.scale, 5),
            "points": [[round(x, 2), round(y, 2)] for x, y in self.points],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FrameFeatures:
        return cls(
            ear=float(data["ear"]),
            iris_visibility=(
                None if data.get("iris_visibility") is None else float(data["iris_visibility"])
            ),
            mar=float(data["mar"]),
            smile=float(data["smile"]),
            yaw=float(data["yaw"]),
            pitch=float(data["pitch"]),
            scale=float(data["scale"]),
            points=tuple((float(x), float(y)) for x, y in data["points"]),
        )


def features_from_mesh(
    mesh: np.ndarray,
    image_width: int,
    iris_visibility: float | None,
) -> FrameFeatures:
    right, left = geo.eye_aspect_ratios(mesh)
    yaw, pitch = geo.head_pose(mesh)
    pts = mesh[list(lm.PARALLAX_POINTS), :2]
    return FrameFeatures(
        ear=(right + left) / 2,
        iris_visibility=iris_visibility,
        mar=geo.mouth_aspect_ratio(mesh),
        smile=geo.smile_ratio(mesh),
        yaw=yaw,
        pitch=pitch,
        scale=geo.eye_span(mesh) / max(image_width, 1),
        points=tuple((float(x), float(y)) for x, y in pts),
    )


@dataclass(frozen=True)
class MeshReading:
    """One frame's features, the crop to start the next frame's mesh from, and whether
    this frame's mesh was followed from the previous frame's crop (``tracked``) rather
    than found afresh in the detector's box."""

    features: FrameFeatures | None
    roi: Roi | None
    tracked: bool = False


class FeatureExtractor:
    """Mesh + iris + geometry for one frame. Holds the two models; build it once."""

    def __init__(self, mesh: FaceMesh | None = None, iris: IrisModel | None = None) -> None:
        self.mesh = mesh or FaceMesh()
        self.iris = iris or IrisModel()

    def __call__(
        self, image: Image, box: tuple[float, float, float, float]
    ) -> FrameFeatures | None:
        """None when the mesh model finds no face in the box."""
        return self.measure(image, box, None).features

    def measure(
        self,
        image: Image,
        box: tuple[float, float, float, float] | None,
        previous: Roi | None,
        *,
        iris: bool = True,
    ) -> MeshReading:
        """Features, and the ROI to start the next frame from. With ``previous`` (the
        last frame's ROI) the mesh runs once there; it falls back to the detector's
        ``box`` (two passes) when the face left that ROI. ``iris=False`` skips the iris
        model (half of this method's cost); ``iris_visibility`` is then None."""
        result: MeshResult | None = None
        tracked = False
        if previous is not None:
            result = self.mesh.track(image, previous)
            if result is not None and box is not None and not _inside(result, box):
                result = None
            tracked = result is not None
        if result is None and box is not None:
            result = self.mesh(image, box)
        if result is None:
            return MeshReading(None, None)
        features = self._features(image, result, iris=iris)
        return MeshReading(features, mesh_roi(result.points), tracked)

    def _features(self, image: Image, result: MeshResult, *, iris: bool) -> FrameFeatures:
        visibility = None
        if iris:
            right, left = self.iris(image, result.points)
            visibility = (
                geo.iris_visibility(right.contour, right.iris)
                + geo.iris_visibility(left.contour, left.iris)
            ) / 2
        return features_from_mesh(result.points, image.shape[1], visibility)


def _inside(result: MeshResult, box: tuple[float, float, float, float]) -> bool:
    """Is the tracked mesh's nose tip inside the detector's box (the same face)?"""
    x, y = result.points[lm.NOSE_TIP, :2]
    left, top, right, bottom = box
    return left <= x <= right and top <= y <= bottom
