"""ArcFace (512-d) from an operator-supplied InsightFace pack, run by onnxruntime.

The service never downloads weights: ``FACEPRINT_MODEL_DIR`` points at an unpacked
pack (``buffalo_l``, ``antelopev2``, …). The recognition graph is the ``.onnx`` file
whose input is ``(n, 3, 112, 112)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from numpy.typing import NDArray

from indexing.embedders.normalise import l2_normalise
from indexing.errors import ModelUnavailable
from indexing.graph_runtimes import onnx_providers
from indexing.types import ModelSpec

ARCFACE_CHIP_SIZE = 112
# Known recognition graphs first, so a pack holding several 112-px models is unambiguous.
_PREFERRED = ("w600k", "glintr100", "arcface")


def _input_hw(path: Path) -> tuple[object, object] | None:
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - an unreadable file is simply not a candidate
        return None
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        return None
    return dims[2].dim_value, dims[3].dim_value


def find_arcface_model(model_dir: Path) -> Path:
    """The recognition graph inside an unpacked pack, searched recursively."""
    candidates = [p for p in sorted(model_dir.rglob("*.onnx")) if _input_hw(p) == (112, 112)]
    if not candidates:
        raise ModelUnavailable("arcface-onnx", f"no 112×112 recognition .onnx in {model_dir}")
    for key in _PREFERRED:
        for path in candidates:
            if key in path.name.lower():
                return path
    return candidates[0]


def _normalisation(model: onnx.ModelProto) -> tuple[float, float]:
    """InsightFace's rule: graphs that begin with Sub/Mul normalise themselves."""
    first_ops = {node.op_type for node in model.graph.node[:8]}
    if "Sub" in first_ops and "Mul" in first_ops:
        return 0.0, 1.0
    return 127.5, 127.5


class ArcFaceOnnxEmbedder:
    """Embeds 112×112 ArcFace-aligned RGB chips in one batched onnxruntime call.
    ``InferenceSession.run`` is thread-safe, so one session serves every thread."""

    alignment = "arcface-112"

    def __init__(self, spec: ModelSpec, model_path: Path, *, intra_op_threads: int = 1) -> None:
        self.spec = spec
        model = onnx.load(str(model_path))
        self._mean, self._std = _normalisation(model)
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        self.providers = onnx_providers()
        self._session = ort.InferenceSession(
            model.SerializeToString(), sess_options=options, providers=self.providers
        )
        self._input = self._session.get_inputs()[0].name
        out_dim = self._session.get_outputs()[0].shape[-1]
        if isinstance(out_dim, int) and out_dim != spec.dim:
            raise ModelUnavailable(spec.id, f"{model_path.name} gives {out_dim}-d, need {spec.dim}")

    def embed(self, chips: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
        if len(chips) == 0:
            return np.zeros((0, self.spec.dim), dtype=np.float32)
        batch = np.stack([np.asarray(c, dtype=np.uint8) for c in chips])
        if batch.shape[1:] != (ARCFACE_CHIP_SIZE, ARCFACE_CHIP_SIZE, 3):
            raise ValueError(f"ArcFace chips must be 112×112×3, got {batch.shape[1:]}")
        blob = (batch.astype(np.float32) - self._mean) / self._std
        blob = np.ascontiguousarray(blob.transpose(0, 3, 1, 2))
        (out,) = self._session.run(None, {self._input: blob})[:1]
        return l2_normalise(out)
