"""One challenge frame → the measurements the session needs: mesh features, and the
tracked motion of the face against the session's first frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liveness.depth import MotionPair, compare
from liveness.features import FeatureExtractor, FrameFeatures
from liveness.mesh import Image
from liveness.tracking import TrackState, to_gray


@dataclass(frozen=True)
class FrameMeasurement:
    features: FrameFeatures | None
    motion: MotionPair | None
    track: TrackState | None


def measure_frame(
    extractor: FeatureExtractor,
    image: Image,
    box: tuple[float, float, float, float] | None,
    track: TrackState | None,
) -> FrameMeasurement:
    """``box`` None means the detector found no face; the track still steps so the
    points keep following the picture."""
    gray, scale = to_gray(image)
    previous = track.roi if track is not None else None
    features, roi = extractor.measure(image, box, previous)
    if track is None:
        if features is None:
            return FrameMeasurement(None, None, None)
        seeds = np.asarray(features.points, np.float64) * scale
        return FrameMeasurement(features, None, TrackState.start(gray, seeds, roi))
    track = track.step(gray, roi)
    motion = None
    if track.usable:
        motion = compare(track.reference[track.alive], track.current[track.alive])
    return FrameMeasurement(features, motion, track)
