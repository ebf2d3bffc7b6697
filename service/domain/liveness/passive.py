"""The passive (single-image) liveness check, on its own or inside a verify."""

from __future__ import annotations

import time
import uuid

import numpy as np
from sqlalchemy.orm import Session

from indexing.errors import ImageError
from indexing.pipeline import FacePipeline
from indexing.types import BBox
from liveness.passive.check import (
    PassiveChecker,
    PassiveResult,
    check_face,
    check_largest_face,
)
from service.core.principal import Principal
from service.core.problems import Unprocessable, from_pipeline_error
from service.domain import history
from service.domain.liveness.runtime import LivenessRuntime


class NoFaceForLiveness(Unprocessable):
    slug, title = "no-face", "No face found"


def decode(pipeline: FacePipeline, data: bytes) -> np.ndarray:
    try:
        return pipeline.decode(data)
    except ImageError as exc:
        raise from_pipeline_error(exc) from exc


def passive_check(runtime: LivenessRuntime, image_bytes: bytes) -> PassiveResult:
    """The passive check of the largest face in ``image_bytes``. Raises problems for
    bad images and no face."""
    pipeline = runtime.pipeline
    return passive_check_image(runtime.passive, pipeline, decode(pipeline, image_bytes))


def passive_check_image(
    checker: PassiveChecker, pipeline: FacePipeline, image: np.ndarray
) -> PassiveResult:
    """The passive check of the largest face of a decoded image."""
    result = check_largest_face(checker, pipeline, image)
    if result is None:
        raise NoFaceForLiveness("no face found in the image")
    return result


def passive_check_face(runtime: LivenessRuntime, image: np.ndarray, box: BBox) -> PassiveResult:
    """For verify with ``liveness=true``: the probe's face, already decoded and found by
    the verify itself, so neither happens twice."""
    return check_face(runtime.passive, image, box)


def check_image(
    runtime: LivenessRuntime, session: Session, principal: Principal, image_bytes: bytes
) -> tuple[PassiveResult, uuid.UUID]:
    """``POST /v1/liveness``: the passive check, recorded in the verification history."""
    started = time.perf_counter()
    result = passive_check(runtime, image_bytes)
    row = history.record(
        session,
        kind="liveness",
        principal=principal,
        started=started,
        probe_bbox=result.signals.get("bbox"),
        liveness_decision=result.decision,
        liveness_score=result.score,
        liveness_signals={"mode": "passive", **result.signals},
    )
    return result, row.id
