"""The runtimes that execute the ONNX embedder: which one ``auto`` picks, and that each
gives one answer whatever the threads, the batch or the number of concurrent callers."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from indexing.dlib_onnx.cache import ensure_graph
from indexing.dlib_onnx.graph import INPUT_NAME
from indexing.graph_runtimes import (
    OnnxRuntimeGraph,
    OpenVinoGraph,
    load_graph,
    openvino_bf16_native,
    resolve_runtime,
)


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return ensure_graph(tmp_path_factory.mktemp("models")).model_bytes


def test_auto_prefers_cuda_then_native_bf16_then_onnxruntime() -> None:
    gpu = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert resolve_runtime("auto", gpu) == "onnxruntime"
    expected = "openvino" if openvino_bf16_native() else "onnxruntime"
    assert resolve_runtime("auto", ["CPUExecutionProvider"]) == expected
    assert resolve_runtime("openvino", gpu) == "openvino"  # an explicit choice stands
    with pytest.raises(ValueError, match="unknown graph runtime"):
        resolve_runtime("tensorrt", gpu)  # type: ignore[arg-type]


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_threads_batches_and_concurrent_callers_give_one_answer(
    model_bytes: bytes, runtime: str
) -> None:
    graph = load_graph(model_bytes, INPUT_NAME, runtime=runtime)  # type: ignore[arg-type]
    assert isinstance(graph, OpenVinoGraph if runtime == "openvino" else OnnxRuntimeGraph)
    assert graph.description.startswith(runtime)
    chips = np.random.default_rng(3).integers(0, 256, size=(6, 150, 150, 3), dtype=np.uint8)
    whole = graph.run(chips, 1)
    assert whole.shape == (6, 128) and whole.dtype == np.float32
    singles = np.concatenate([graph.run(chips[i : i + 1], 2) for i in range(6)])
    np.testing.assert_allclose(singles, whole, atol=1e-5)

    results: dict[int, np.ndarray] = {}

    def call(k: int) -> None:
        results[k] = graph.run(chips[k : k + 1], 1)

    threads = [threading.Thread(target=call, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(6):
        np.testing.assert_allclose(results[k][0], whole[k], atol=1e-5)


def test_bad_thread_count_is_refused(model_bytes: bytes) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        load_graph(model_bytes, INPUT_NAME, runtime="onnxruntime", intra_op_threads=0)


def test_openvino_is_used_without_its_telemetry() -> None:
    """``import openvino`` would start OpenVINO's usage telemetry (a forked sender
    posting to Google Analytics); the service never lets it load."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from indexing.graph_runtimes import import_openvino, openvino_bf16_native\n"
        "openvino_bf16_native()\n"
        "assert import_openvino().Core is not None\n"
        "assert 'openvino_telemetry' not in sys.modules, 'telemetry loaded'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
