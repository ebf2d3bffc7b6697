"""Everything liveness needs at request time, built once in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field

from indexing.pipeline import FacePipeline
from liveness.actions import ChallengePolicy
from liveness.features import FeatureExtractor
from liveness.passive.check import PassiveChecker
from liveness.passive.onnx_model import load_operator_model
from service.core.settings import Settings


@dataclass
class LivenessRuntime:
    """The mesh and passive models, the challenge policy, and the app's one face
    pipeline (detection and embeddings)."""

    settings: Settings
    pipeline: FacePipeline
    extractor: FeatureExtractor
    passive: PassiveChecker
    policy: ChallengePolicy = field(default_factory=ChallengePolicy)
    session_ttl_s: float = 120.0
    # After a session passed: how long it may back its one verify.
    session_validity_s: float = 60.0
    model_id: str = "dlib-resnet-v1-onnx"


def build_runtime(settings: Settings, pipeline: FacePipeline) -> LivenessRuntime:
    model = load_operator_model(settings.model_dir, settings.intra_op_threads)
    return LivenessRuntime(
        settings=settings,
        pipeline=pipeline,
        extractor=FeatureExtractor(),
        passive=PassiveChecker(model),
        model_id=settings.default_model,
        session_validity_s=settings.liveness_session_validity_s,
    )
