"""Model ids → what their vectors mean (``ModelSpec``) and how to build the embedder.

Adding a model is one entry in ``MODELS``: an id, its spec, the chip alignment it
needs and a factory taking an :class:`EmbedderContext`. Embedders are built lazily,
once, the first time an id is asked for.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

from indexing.embedders.base import Embedder
from indexing.errors import ModelUnavailable
from indexing.types import ModelSpec


@dataclass(frozen=True)
class EmbedderContext:
    """What a factory may use; nothing reads global settings."""

    model_dir: Path | None
    cache_dir: Path
    intra_op_threads: int = 1
    # Average each face's embedding with its mirror image's (2× embedding cost); models
    # with a ``flip_spec`` then report that spec's separately calibrated threshold.
    flip_average: bool = False


@dataclass(frozen=True)
class ModelEntry:
    spec: ModelSpec
    alignment: str  # "dlib-150" or "arcface-112"
    build: Callable[[EmbedderContext], Embedder]
    # The spec (threshold) that holds when embeddings are mirror-averaged.
    flip_spec: ModelSpec | None = None


# Threshold calibrated by `benchmarks/accuracy.py --pairs ../shared/data/lfw-dev` with
# the default pipeline (BlazeFace, refitted 5-point landmarks): the cosine at which
# 1e-3 of the 1,198,786 different-person pairs of its 1,549 photos match; FNMR there
# 7.1% (10 of 140 same-person pairs); 0.92634 rounded up to keep FMR <= 1e-3. (dlib's classic
# "Euclidean 0.6" is for its raw, unnormalised vectors, not these unit vectors.)
DLIB_RESNET_V1 = ModelSpec(
    id="dlib-resnet-v1",
    dim=128,
    version="dlib_face_recognition_resnet_model_v1 (face-recognition-models 0.3.0)",
    threshold=0.9264,
    target_fmr=1e-3,
    calibrated_on="lfw-dev (1,549 photos, 1.2M impostor pairs) at FMR 1e-3",
)
# The same with mirror averaging (--flip): FNMR 7.1% at FMR 1e-3 too, 20% vs 24% at 1e-4.
DLIB_RESNET_V1_FLIP = replace(
    DLIB_RESNET_V1,
    threshold=0.9291,
    calibrated_on="lfw-dev (1,549 photos, 1.2M impostor pairs) at FMR 1e-3, mirror-averaged",
)
# The same weights as dlib-resnet-v1 run by onnxruntime (tests/test_dlib_onnx_parity.py:
# cosine >= 0.9999 to dlib-bin), so it shares that model's dimension and threshold.
DLIB_RESNET_V1_ONNX = ModelSpec(
    id="dlib-resnet-v1-onnx",
    dim=DLIB_RESNET_V1.dim,
    version=DLIB_RESNET_V1.version + " as ONNX",
    threshold=DLIB_RESNET_V1.threshold,
    target_fmr=DLIB_RESNET_V1.target_fmr,
    calibrated_on=DLIB_RESNET_V1.calibrated_on,
)
DLIB_RESNET_V1_ONNX_FLIP = replace(
    DLIB_RESNET_V1_ONNX,
    threshold=DLIB_RESNET_V1_FLIP.threshold,
    calibrated_on=DLIB_RESNET_V1_FLIP.calibrated_on,
)
# No pack ships with the service, so nothing here calibrated it: 0.30 is the operating
# point InsightFace publishes for its ArcFace packs. Recalibrate with
# benchmarks/accuracy.py --model arcface-onnx once a pack is installed.
ARCFACE_ONNX = ModelSpec(
    id="arcface-onnx",
    dim=512,
    version="InsightFace ArcFace pack from FACEPRINT_MODEL_DIR",
    threshold=0.30,
    target_fmr=1e-3,
    calibrated_on="not calibrated here (InsightFace's published operating point)",
)


def _build_dlib(ctx: EmbedderContext) -> Embedder:
    from indexing.embedders.dlib_resnet import DlibResnetEmbedder

    return DlibResnetEmbedder(DLIB_RESNET_V1, flip_average=ctx.flip_average)


def _build_dlib_onnx(ctx: EmbedderContext) -> Embedder:
    from indexing.embedders.dlib_onnx import DlibOnnxEmbedder

    return DlibOnnxEmbedder(
        DLIB_RESNET_V1_ONNX,
        ctx.cache_dir,
        intra_op_threads=ctx.intra_op_threads,
        flip_average=ctx.flip_average,
    )


def _build_arcface(ctx: EmbedderContext) -> Embedder:
    if ctx.model_dir is None:
        raise ModelUnavailable(ARCFACE_ONNX.id, "FACEPRINT_MODEL_DIR is not set")
    if not ctx.model_dir.is_dir():
        raise ModelUnavailable(ARCFACE_ONNX.id, f"{ctx.model_dir} is not a directory")
    from indexing.embedders.arcface_onnx import ArcFaceOnnxEmbedder, find_arcface_model

    path = find_arcface_model(ctx.model_dir)
    return ArcFaceOnnxEmbedder(ARCFACE_ONNX, path, intra_op_threads=ctx.intra_op_threads)


MODELS: Mapping[str, ModelEntry] = MappingProxyType(
    {
        DLIB_RESNET_V1.id: ModelEntry(
            DLIB_RESNET_V1, "dlib-150", _build_dlib, flip_spec=DLIB_RESNET_V1_FLIP
        ),
        ARCFACE_ONNX.id: ModelEntry(ARCFACE_ONNX, "arcface-112", _build_arcface),
        DLIB_RESNET_V1_ONNX.id: ModelEntry(
            DLIB_RESNET_V1_ONNX, "dlib-150", _build_dlib_onnx, flip_spec=DLIB_RESNET_V1_ONNX_FLIP
        ),
    }
)


class ModelRegistry:
    """Specs of every known model; embedders built on first use, once, thread-safely."""

    def __init__(
        self, context: EmbedderContext, entries: Mapping[str, ModelEntry] = MODELS
    ) -> None:
        self.context = context
        self._entries = dict(entries)
        self._built: dict[str, Embedder] = {}
        self._lock = threading.Lock()

    def ids(self) -> list[str]:
        return list(self._entries)

    def entry(self, model_id: str) -> ModelEntry:
        try:
            return self._entries[model_id]
        except KeyError:
            known = ", ".join(self._entries)
            raise ModelUnavailable(model_id, f"unknown model id; known: {known}") from None

    def spec(self, model_id: str) -> ModelSpec:
        """The model's spec as this registry's embedders produce vectors: with mirror
        averaging on, the threshold calibrated for it."""
        entry = self.entry(model_id)
        if self.context.flip_average and entry.flip_spec is not None:
            return entry.flip_spec
        return entry.spec

    def embedder(self, model_id: str) -> Embedder:
        built = self._built.get(model_id)
        if built is not None:
            return built
        entry = self.entry(model_id)
        with self._lock:
            if model_id not in self._built:
                self._built[model_id] = entry.build(self.context)
            return self._built[model_id]

    def available(self, model_id: str) -> bool:
        """True when the embedder builds here (files and runtime present)."""
        try:
            self.embedder(model_id)
        except ModelUnavailable:
            return False
        return True
