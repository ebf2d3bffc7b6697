"""The values that flow through the face pipeline. Plain data, no behaviour."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

# An RGB image, uint8, shape (height, width, 3), EXIF orientation already applied.
RGBImage = NDArray[np.uint8]
# Five (x, y) points in image pixels: right eye, left eye, nose, right mouth, left mouth
# as the detector/landmarker defines them; each module documents its own order.
Landmarks = NDArray[np.float32]
Embedding = NDArray[np.float32]


@dataclass(frozen=True)
class BBox:
    """Pixel box: left, top, right, bottom (exclusive), in the oriented image."""

    left: float
    top: float
    right: float
    bottom: float

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    def as_dict(self) -> dict[str, float]:
        return {
            "x": round(self.left, 1),
            "y": round(self.top, 1),
            "width": round(self.width, 1),
            "height": round(self.height, 1),
        }


@dataclass(frozen=True)
class ModelSpec:
    """What an embedding model's vectors mean and where its decision threshold sits."""

    id: str
    dim: int
    version: str
    # Cosine similarity at or above which two faces are declared the same person.
    threshold: float
    # The false-match rate the threshold was calibrated for, and on what.
    target_fmr: float
    calibrated_on: str
    metric: str = "cosine"


@dataclass
class Quality:
    face_px: float
    sharpness: float
    brightness: float
    yaw: float
    pitch: float
    score: float
    problems: list[str] = field(default_factory=list)
    # Share of the face box that lies outside the photo (a face cut off by the frame).
    outside: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "face_px": round(self.face_px, 1),
            "outside": round(self.outside, 3),
            "sharpness": round(self.sharpness, 2),
            "brightness": round(self.brightness, 3),
            "yaw": round(self.yaw, 1),
            "pitch": round(self.pitch, 1),
            "score": round(self.score, 3),
            "problems": list(self.problems),
        }


# What executes an ONNX graph that has a choice (indexing.graph_runtimes).
GraphRuntimeName = Literal["auto", "onnxruntime", "openvino"]
