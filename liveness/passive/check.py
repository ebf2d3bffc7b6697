"""The passive check: the signals of one face, combined into one score.

Combination: each heuristic signal gives attack evidence in [0, 1]; texture, frequency
and colour each catch a different attack, so the heuristic attack score is the largest
of them; the border cue (which natural backgrounds also trip, e.g. a window frame)
adds up to 0.55 on top: edges on three or four sides of the face reject it alone, one
or two sides only tip a doubtful face.
``score = 1 − attack`` is the liveness score; the decision is
``live`` when ``score ≥ THRESHOLD`` (0.5). With an operator's ONNX model, its live
probability carries 70 % of the score and the heuristics 30 %.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from liveness.mesh import Image
from liveness.passive import signals
from liveness.passive.crops import Box, face_crop, native_patch
from liveness.passive.onnx_model import OnnxAntiSpoof

THRESHOLD = 0.5
BORDER_WEIGHT = 0.55
MODEL_WEIGHT = 0.7


@dataclass(frozen=True)
class PassiveResult:
    score: float  # 1 = live, 0 = attack
    decision: str  # "live" | "spoof"
    signals: dict[str, Any]


class PassiveChecker:
    def __init__(self, model: OnnxAntiSpoof | None = None, threshold: float = THRESHOLD) -> None:
        self.model = model
        self.threshold = threshold

    def __call__(self, image: Image, box: Box) -> PassiveResult:
        face = face_crop(image, box)
        parts = {
            "texture": signals.texture(face),
            "frequency": signals.frequency(native_patch(image, box)),
            "colour": signals.colour(face),
            "border": signals.border(image, box),
        }
        attack = min(
            1.0,
            max(parts["texture"].attack, parts["frequency"].attack, parts["colour"].attack)
            + BORDER_WEIGHT * parts["border"].attack,
        )
        heuristic = 1.0 - attack
        report: dict[str, Any] = {
            name: {"attack": round(s.attack, 4), **s.raw} for name, s in parts.items()
        }
        score = heuristic
        if self.model is not None:
            live = self.model.live_probability(image, box)
            report["model"] = {"live_probability": round(live, 4), "file": self.model.path.name}
            score = MODEL_WEIGHT * live + (1 - MODEL_WEIGHT) * heuristic
        report["heuristic_score"] = round(heuristic, 4)
        report["threshold"] = self.threshold
        decision = "live" if score >= self.threshold else "spoof"
        return PassiveResult(round(score, 4), decision, report)


class FaceBox(Protocol):
    left: float
    top: float
    right: float
    bottom: float

    def as_dict(self) -> dict[str, float]: ...


class FoundFace(Protocol):
    @property
    def bbox(self) -> FaceBox: ...


class FaceFinder(Protocol):
    """The detector call the check needs (``indexing.pipeline.FacePipeline.find_faces``)."""

    def find_faces(self, image: Image) -> Sequence[FoundFace]: ...


def check_face(checker: PassiveChecker, image: Image, box: FaceBox) -> PassiveResult:
    """The passive check of the face at ``box`` in a decoded image."""
    result = checker(image, (box.left, box.top, box.right, box.bottom))
    result.signals["bbox"] = box.as_dict()
    return result


def check_largest_face(
    checker: PassiveChecker, finder: FaceFinder, image: Image
) -> PassiveResult | None:
    """The passive check of the largest face of a decoded image, or None without a face:
    the detector's box is all it needs (no landmarks, chips or quality)."""
    found = finder.find_faces(image)
    return check_face(checker, image, found[0].bbox) if found else None
