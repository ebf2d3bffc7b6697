"""One challenge frame → the measurements the session needs: mesh features, the
tracked motion of the face against the session's first frame, and whether the face is
continuous with the previous frame's.

Continuity is what lets a session skip the embedding on some frames
(``liveness.session.embedding_needed``). A frame is continuous with the one before
when all of these hold:

- the previous frame had a face mesh, and this frame's mesh was found by following
  the previous crop (not re-acquired from the detector's box: the face left the crop
  or the tracker lost it), with its nose tip inside the detector's box;
- the image points carried by optical flow were nearly all found again
  (``CONTINUITY_MIN_KEPT``), with a median Lucas–Kanade matching error of at most
  ``CONTINUITY_MAX_ERROR`` grey levels per pixel.

A different face put in the place of the first, even at the same position and scale,
does not match the previous frame's pixels. ``benchmarks/liveness.py`` measures both
sides on the shared photos: one person's webcam frame followed by another's gives
median errors of 17–48 (248 swaps, none judged continuous), while the same face turned
by 8–10° in 3-D between frames, or tilted as a flat sheet, gives 0.6–16 (360 steps, 7 of
them above the threshold). The threshold sits well below the swaps; a real step above
it only costs an embedding, it fails nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liveness.depth import MotionPair, compare
from liveness.features import FeatureExtractor, FrameFeatures
from liveness.mesh import Image
from liveness.tracking import StepQuality, TrackState, to_gray

# A frame whose step kept fewer of the points, or matched them worse, is not
# continuous with the previous one (its face gets embedded).
CONTINUITY_MIN_KEPT = 0.9
CONTINUITY_MAX_ERROR = 8.0


@dataclass(frozen=True)
class FrameMeasurement:
    features: FrameFeatures | None
    motion: MotionPair | None
    track: TrackState | None
    continuous: bool = False  # the same face as the previous frame's, unbroken
    step: StepQuality | None = None


def measure_frame(
    extractor: FeatureExtractor,
    image: Image,
    box: tuple[float, float, float, float] | None,
    track: TrackState | None,
    *,
    iris: bool = True,
) -> FrameMeasurement:
    """``box`` None means the detector found no face; the track still steps so the
    points keep following the picture. ``iris=False`` skips the iris model when the
    session does not need it on this frame (``liveness.session.needs_iris``)."""
    gray, scale = to_gray(image)
    previous = track.roi if track is not None else None
    reading = extractor.measure(image, box, previous, iris=iris)
    if track is None:
        if reading.features is None:
            return FrameMeasurement(None, None, None)
        seeds = np.asarray(reading.features.points, np.float64) * scale
        return FrameMeasurement(reading.features, None, TrackState.start(gray, seeds, reading.roi))
    track, step = track.step(gray, reading.roi)
    motion = None
    if track.usable:
        motion = compare(track.reference[track.alive], track.current[track.alive])
    continuous = (
        reading.tracked
        and track.usable
        and step.kept >= CONTINUITY_MIN_KEPT
        and step.error <= CONTINUITY_MAX_ERROR
    )
    return FrameMeasurement(reading.features, motion, track, continuous, step)
