"""dlib's ResNet face recognition model (128-d) as an ONNX graph on onnxruntime.

The graph is built from the same ``.dat`` weights that ``dlib-bin`` runs
(``indexing/dlib_onnx``) and cached in the directory the caller passes; its embeddings
match ``dlib-resnet-v1`` (cosine ≥ 0.9999, see ``tests/test_dlib_onnx_parity.py``), so
it shares that model's threshold. Unlike ``dlib-bin`` it batches, uses the CPU's vector
units, and runs on ``CUDAExecutionProvider`` where onnxruntime has it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from indexing.call_threads import call_threads
from indexing.dlib_onnx.cache import CachedGraph, ensure_graph
from indexing.dlib_onnx.graph import INPUT_NAME
from indexing.dlib_onnx.serialization import DlibFormatError
from indexing.embedders.arcface_onnx import onnx_providers
from indexing.embedders.normalise import l2_normalise
from indexing.errors import ModelUnavailable
from indexing.types import ModelSpec

DLIB_CHIP_SIZE = 150
DEFAULT_MAX_BATCH = 32


def session_options(intra_op_threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    # One thread per call by default: the server runs several requests at once, and
    # each extra thread per call mostly takes a core from another request.
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


class DlibOnnxEmbedder:
    """Embeds 150×150 dlib face chips in batches of at most ``max_batch``.
    ``InferenceSession.run`` is thread-safe, so one embedder serves every thread."""

    alignment = "dlib-150"

    def __init__(
        self,
        spec: ModelSpec,
        cache_dir: Path,
        *,
        dat_path: Path | None = None,
        intra_op_threads: int = 1,
        providers: Sequence[str] | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        flip_average: bool = False,
    ) -> None:
        if intra_op_threads < 1:
            raise ValueError("intra_op_threads must be at least 1")
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.spec = spec
        self.max_batch = max_batch
        # As in the dlib-bin embedder: average a face with its mirror image.
        self.flip_average = flip_average
        try:
            self.graph: CachedGraph = ensure_graph(cache_dir, dat_path)
        except (OSError, DlibFormatError) as exc:
            raise ModelUnavailable(spec.id, f"cannot build its ONNX graph: {exc}") from exc
        self.providers = list(providers) if providers is not None else onnx_providers()
        self.intra_op_threads = intra_op_threads
        self._sessions: dict[int, ort.InferenceSession] = {}
        self._sessions_lock = threading.Lock()
        self._session(intra_op_threads)

    def _session(self, threads: int) -> ort.InferenceSession:
        """One session per thread count, made on first use (a pipeline call that runs
        alone may use more threads than the configured count, see call_threads)."""
        session = self._sessions.get(threads)
        if session is None:
            with self._sessions_lock:
                session = self._sessions.get(threads)
                if session is None:
                    options = session_options(threads)
                    if threads > self.intra_op_threads:
                        # Its extra threads must not spin between calls: the next call
                        # may well be one of several, on the cores they would hold.
                        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                    session = ort.InferenceSession(
                        self.graph.model_bytes, sess_options=options, providers=self.providers
                    )
                    self._sessions[threads] = session
        return session

    def _run(self, batch: NDArray[np.uint8]) -> NDArray[np.float32]:
        session = self._session(max(self.intra_op_threads, call_threads()))
        outs = [
            session.run(None, {INPUT_NAME: batch[i : i + self.max_batch]})[0]
            for i in range(0, len(batch), self.max_batch)
        ]
        return np.concatenate(outs).astype(np.float32, copy=False)

    def embed(self, chips: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
        if len(chips) == 0:
            return np.zeros((0, self.spec.dim), dtype=np.float32)
        for chip in chips:
            if np.shape(chip) != (DLIB_CHIP_SIZE, DLIB_CHIP_SIZE, 3):
                raise ValueError(f"dlib chips must be 150×150×3, got {np.shape(chip)}")
        batch = np.stack([np.asarray(c, dtype=np.uint8) for c in chips])
        raw = self._run(batch)
        if self.flip_average:
            mirrored = self._run(np.ascontiguousarray(batch[:, :, ::-1]))
            raw = l2_normalise(raw) + l2_normalise(mirrored)
        return l2_normalise(raw)
