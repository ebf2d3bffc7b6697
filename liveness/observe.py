"""One challenge frame observed: faces, mesh, tracked motion, continuity and, when the
session needs it, the embedding. Everything a session frame needs but the database, so
the service and the benchmark run the same function."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from liveness.actions import ChallengePolicy
from liveness.features import FeatureExtractor
from liveness.frames import measure_frame
from liveness.session import Observation, SessionState, embedding_needed, needs_iris
from liveness.tracking import TrackState


class FaceAnalyzer(Protocol):
    """The face pipeline's calls a frame needs (``indexing.pipeline.FacePipeline``)."""

    def analyze_image(
        self, image: np.ndarray, *, model_ids: Sequence[str], max_faces: int | None = ...
    ) -> list[Any]: ...

    def find_faces(self, image: np.ndarray) -> list[Any]: ...

    def analyze_detections(
        self, image: np.ndarray, detections: Sequence[Any], *, model_ids: Sequence[str]
    ) -> list[Any]: ...


@dataclass(frozen=True)
class ObservedFrame:
    observation: Observation
    track: TrackState | None
    embedded: bool  # an embedding was computed for this frame
    # The need for an embedding showed only after the frame was measured (the faces
    # already detected were embedded then).
    late_embedding: bool


def observe_frame(
    extractor: FeatureExtractor,
    pipeline: FaceAnalyzer,
    model_id: str,
    image: np.ndarray,
    machine: SessionState,
    track: TrackState | None,
    *,
    digest: str,
    last: bool,
    now: float,
    expires_at: float,
    policy: ChallengePolicy,
) -> ObservedFrame:
    """Everything a session frame needs but the database: faces, mesh (and the iris
    model when a blink can count), tracked motion, continuity, and the embedding when
    ``embedding_needed`` asks for it. The benchmark times this same function."""
    model_ids = [model_id]
    # When the embedding is certain to be needed, one analyze_image detects and embeds;
    # otherwise the detector alone counts the faces and gives the box.
    certain = (
        track is None
        or machine.reference_embedding is None
        or last
        or machine.unembedded >= policy.max_unembedded
    )
    analyzed = pipeline.analyze_image(image, model_ids=model_ids, max_faces=2) if certain else None
    found = pipeline.find_faces(image) if analyzed is None else []
    boxes = [f.bbox for f in analyzed] if analyzed is not None else [d.bbox for d in found]
    box = None
    if len(boxes) == 1:
        b = boxes[0]
        box = (b.left, b.top, b.right, b.bottom)
    measured = measure_frame(extractor, image, box, track, iris=needs_iris(machine))
    obs = Observation(
        digest=digest,
        faces=len(boxes),
        features=measured.features,
        motion=measured.motion,
        last=last,
        continuous=measured.continuous,
    )
    if not embedding_needed(machine, obs, now=now, expires_at=expires_at, policy=policy):
        return ObservedFrame(obs, measured.track, False, False)
    late = analyzed is None
    if late:
        # The need showed only now (a break in continuity, or a frame that completes an
        # action): the faces already detected are embedded, not detected again.
        analyzed = pipeline.analyze_detections(image, found[:2], model_ids=model_ids)
    if len(analyzed) != 1:
        # Unreachable today (embedding_needed asks only for frames with one face, and
        # the faces embedded are the ones counted); kept so that a change there can
        # never credit an unchecked face: the frame counts with the faces embedded.
        return ObservedFrame(replace(obs, faces=len(analyzed)), measured.track, False, late)
    embedding = [float(x) for x in analyzed[0].embeddings[model_id]]
    return ObservedFrame(replace(obs, embedding=embedding), measured.track, True, late)
