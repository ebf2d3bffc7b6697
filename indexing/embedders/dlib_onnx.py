"""dlib's ResNet face recognition model (128-d) as an ONNX graph.

The graph is built from the same ``.dat`` weights that ``dlib-bin`` runs
(``indexing/dlib_onnx``) and cached in the directory the caller passes; its embeddings
match ``dlib-resnet-v1`` (cosine ≥ 0.9999, see ``tests/test_dlib_onnx_parity.py``), so
it shares that model's threshold. Unlike ``dlib-bin`` it batches and uses the CPU's
vector (and, with OpenVINO, matrix) units, or a GPU through onnxruntime's
``CUDAExecutionProvider``: ``indexing.graph_runtimes`` picks the runtime.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from indexing.call_threads import call_threads
from indexing.dlib_onnx.cache import CachedGraph, ensure_graph
from indexing.dlib_onnx.graph import INPUT_NAME
from indexing.dlib_onnx.serialization import DlibFormatError
from indexing.embedders.normalise import l2_normalise
from indexing.errors import ModelUnavailable
from indexing.graph_runtimes import GraphRuntime, GraphRuntimeName, load_graph
from indexing.types import ModelSpec

log = logging.getLogger(__name__)

DLIB_CHIP_SIZE = 150
DEFAULT_MAX_BATCH = 32


class DlibOnnxEmbedder:
    """Embeds 150×150 dlib face chips in batches of at most ``max_batch``; one embedder
    serves every thread."""

    alignment = "dlib-150"

    def __init__(
        self,
        spec: ModelSpec,
        cache_dir: Path,
        *,
        dat_path: Path | None = None,
        intra_op_threads: int = 1,
        runtime: GraphRuntimeName = "auto",
        providers: Sequence[str] | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        flip_average: bool = False,
    ) -> None:
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
        self.runtime: GraphRuntime = load_graph(
            self.graph.model_bytes,
            INPUT_NAME,
            runtime=runtime,
            intra_op_threads=intra_op_threads,
            providers=providers,
        )
        log.info("%s runs on %s", spec.id, self.runtime.description)

    def _run(self, batch: NDArray[np.uint8]) -> NDArray[np.float32]:
        threads = call_threads()
        outs = [
            self.runtime.run(batch[i : i + self.max_batch], threads)
            for i in range(0, len(batch), self.max_batch)
        ]
        return np.concatenate(outs)

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
