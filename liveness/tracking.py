"""Image-driven point tracking across a session's frames (pyramidal Lucas–Kanade).

Depth from motion needs correspondences that follow the *pixels*, not a face model:
the mesh network regularises a tilted flat photo toward a plausible 3-D face, which
hides exactly the planarity we want to see. So the mesh only seeds the points (on the
first frame); optical flow carries them from frame to frame. A picture moved in front
of the camera then yields motion that one homography explains; a real head does not.

The previous frame travels in the session state (grey, JPEG), so any API worker can
take the next frame.
"""

from __future__ import annotations

import base64
import math
from dataclasses import astuple, dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from liveness.mesh import Image, Roi

# Frames are tracked at this longest side; 640×480 stays at full resolution.
TRACK_MAX_SIDE = 640
MIN_ALIVE = 12

Gray = NDArray[np.uint8]


def to_gray(image: Image) -> tuple[Gray, float]:
    """Grey copy at tracking scale, and that scale (tracking px per image px)."""
    h, w = image.shape[:2]
    scale = min(1.0, TRACK_MAX_SIDE / max(h, w))
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        gray = cv2.resize(gray, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return gray, scale


@dataclass(frozen=True)
class StepQuality:
    """How one frame-to-frame step went: the share of the points alive before that
    were found again, and the median matching error of those (Lucas–Kanade's mean
    absolute grey-level difference over each point's 21×21 window)."""

    kept: float
    error: float


@dataclass
class TrackState:
    reference: NDArray[np.float32]  # (N, 2) seeds on the first frame, tracking px
    current: NDArray[np.float32]  # (N, 2) the same points on the latest frame
    alive: NDArray[np.bool_]  # points that every step so far tracked
    previous: Gray  # the latest frame, grey, tracking scale
    roi: Roi | None = None  # the face mesh's crop for the next frame, image px

    @classmethod
    def start(cls, gray: Gray, points: NDArray[np.float64], roi: Roi | None = None) -> TrackState:
        seeds = np.asarray(points, np.float32)[:, :2]
        return cls(seeds.copy(), seeds.copy(), np.ones(len(seeds), bool), gray, roi)

    def step(self, gray: Gray, roi: Roi | None = None) -> tuple[TrackState, StepQuality]:
        """Carry the points onto ``gray``; also says how well this one step matched."""
        if gray.shape != self.previous.shape:
            # A resolution change mid-session breaks the correspondence; stop tracking.
            dead = TrackState(self.reference, self.current, np.zeros_like(self.alive), gray, None)
            return dead, StepQuality(0.0, math.inf)
        pts, status, err = cv2.calcOpticalFlowPyrLK(
            self.previous,
            gray,
            self.current.reshape(-1, 1, 2),
            None,
            winSize=(21, 21),
            maxLevel=3,
            criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01),
        )
        alive = self.alive & (status.ravel() == 1)
        before = int(self.alive.sum())
        quality = StepQuality(
            kept=int(alive.sum()) / before if before else 0.0,
            error=float(np.median(err.ravel()[alive])) if alive.any() else math.inf,
        )
        return TrackState(self.reference, pts.reshape(-1, 2), alive, gray, roi), quality

    @property
    def usable(self) -> bool:
        return int(self.alive.sum()) >= MIN_ALIVE

    def as_dict(self) -> dict[str, Any]:
        ok, jpeg = cv2.imencode(".jpg", self.previous, [cv2.IMWRITE_JPEG_QUALITY, 95])
        if not ok:
            raise ValueError("could not encode the tracking frame")
        return {
            "reference": np.round(self.reference, 2).tolist(),
            "current": np.round(self.current, 2).tolist(),
            "alive": self.alive.astype(int).tolist(),
            "previous": base64.b64encode(jpeg.tobytes()).decode("ascii"),
            "roi": None if self.roi is None else list(astuple(self.roi)),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrackState:
        raw = np.frombuffer(base64.b64decode(data["previous"]), np.uint8)
        previous = cv2.imdecode(raw, cv2.IMREAD_GRAYSCALE)
        return cls(
            np.asarray(data["reference"], np.float32).reshape(-1, 2),
            np.asarray(data["current"], np.float32).reshape(-1, 2),
            np.asarray(data["alive"], bool),
            previous,
            Roi(*data["roi"]) if data.get("roi") else None,
        )
