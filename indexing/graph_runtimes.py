"""The runtimes that execute an embedder's ONNX graph: onnxruntime and OpenVINO.

- ``onnxruntime``: float32 on the CPU, or on ``CUDAExecutionProvider`` where the
  installed build has it (``onnxruntime-gpu``).
- ``openvino``: OpenVINO's CPU plugin computing in bfloat16, for CPUs that do bf16 matrix
  arithmetic natively (Intel AMX / AVX-512 BF16). On this machine it runs dlib's ResNet
  in about a third of onnxruntime's float32 time, and its embeddings stay within the
  parity bound (``tests/test_dlib_onnx_parity.py``: cosine ≥ 0.9999 to ``dlib-bin``, the
  same pair decisions). In float32 it is no faster than onnxruntime, so it is only chosen
  where bf16 is native.
- ``auto`` (the default): onnxruntime when it offers CUDA, else OpenVINO bf16 when the
  CPU does bf16 natively, else onnxruntime on the CPU.

Every runtime is asked for a thread count per call (``indexing.call_threads``): a call
that runs alone may use more threads than one of several concurrent calls.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import Protocol, get_args

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from indexing.types import GraphRuntimeName

RUNTIMES: tuple[str, ...] = get_args(GraphRuntimeName)


def import_openvino() -> ModuleType:
    """``openvino``, without its model converter. ``import openvino`` imports
    ``openvino.tools.ovc``, which starts usage telemetry to Google Analytics unless the
    user has opted out in ~/intel: a self-hosted biometric service must not call home,
    and only ever reads ONNX, so the converter is kept out (openvino skips it on
    ImportError)."""
    sys.modules.setdefault("openvino.tools.ovc", None)  # type: ignore[arg-type]
    import openvino

    return openvino


class GraphRuntime(Protocol):
    """One loaded graph with one input; ``run`` is safe to call from many threads."""

    name: str  # "onnxruntime", "openvino"
    description: str  # runtime, device and precision, for logs and benchmark records

    def run(self, batch: NDArray[np.uint8], threads: int) -> NDArray[np.float32]: ...


def onnx_providers() -> list[str]:
    """CUDA when this onnxruntime build reports it, CPU always as the fallback."""
    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def session_options(intra_op_threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    # One thread per call by default: the server runs several requests at once, and
    # each extra thread per call mostly takes a core from another request.
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


class OnnxRuntimeGraph:
    name = "onnxruntime"

    def __init__(
        self,
        model_bytes: bytes,
        input_name: str,
        *,
        intra_op_threads: int = 1,
        providers: Sequence[str] | None = None,
    ) -> None:
        self._model = model_bytes
        self._input = input_name
        self.providers = list(providers) if providers is not None else onnx_providers()
        self.intra_op_threads = intra_op_threads
        self.description = f"onnxruntime {ort.__version__} ({self.providers[0]}, float32)"
        self._sessions: dict[int, ort.InferenceSession] = {}
        self._lock = threading.Lock()
        self._session(intra_op_threads)

    def _session(self, threads: int) -> ort.InferenceSession:
        """One session per thread count, made on first use."""
        session = self._sessions.get(threads)
        if session is None:
            with self._lock:
                session = self._sessions.get(threads)
                if session is None:
                    options = session_options(threads)
                    if threads > self.intra_op_threads:
                        # Its extra threads must not spin between calls: the next call
                        # may well be one of several, on the cores they would hold.
                        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                    session = ort.InferenceSession(
                        self._model, sess_options=options, providers=self.providers
                    )
                    self._sessions[threads] = session
        return session

    def run(self, batch: NDArray[np.uint8], threads: int) -> NDArray[np.float32]:
        session = self._session(max(self.intra_op_threads, threads))
        out = session.run(None, {self._input: batch})[0]
        return np.asarray(out, dtype=np.float32)


def openvino_bf16_native() -> bool:
    """True when OpenVINO is installed and its CPU plugin reports native bf16."""
    try:
        ov = import_openvino()
    except ImportError:
        return False
    try:
        capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except RuntimeError:
        return False
    return "BF16" in capabilities


class OpenVinoGraph:
    """The graph compiled by OpenVINO's CPU plugin, once per thread count per call.

    A compiled model runs one inference per *stream* at a time, so each gets as many
    streams as calls of that width fit on the cores: concurrent calls run side by side
    instead of queueing. Threads are not pinned to cores (several worker processes share
    them). Infer requests are per thread: they are not thread-safe.
    """

    name = "openvino"

    def __init__(
        self,
        model_bytes: bytes,
        input_name: str,
        *,
        intra_op_threads: int = 1,
    ) -> None:
        ov = import_openvino()
        self._core = ov.Core()
        self._model = self._core.read_model(model_bytes)
        self._input = input_name
        self.intra_op_threads = intra_op_threads
        self.description = f"openvino {ov.__version__} (CPU, bf16)"
        self._compiled: dict[int, object] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        self._compile(intra_op_threads)

    def _compile(self, threads: int) -> object:
        compiled = self._compiled.get(threads)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.get(threads)
                if compiled is None:
                    streams = max(1, (os.cpu_count() or 1) // threads)
                    compiled = self._core.compile_model(
                        self._model,
                        "CPU",
                        {
                            "INFERENCE_PRECISION_HINT": "bf16",
                            "NUM_STREAMS": streams,
                            "INFERENCE_NUM_THREADS": streams * threads,
                            "ENABLE_CPU_PINNING": False,
                        },
                    )
                    self._compiled[threads] = compiled
        return compiled

    def _request(self, threads: int) -> object:
        requests: dict[int, object] = self._local.__dict__.setdefault("requests", {})
        request = requests.get(threads)
        if request is None:
            request = self._compile(threads).create_infer_request()  # type: ignore[attr-defined]
            requests[threads] = request
        return request

    def run(self, batch: NDArray[np.uint8], threads: int) -> NDArray[np.float32]:
        request = self._request(max(self.intra_op_threads, threads))
        outputs = request.infer({self._input: batch})  # type: ignore[attr-defined]
        return np.array(next(iter(outputs.values())), dtype=np.float32)


def resolve_runtime(requested: GraphRuntimeName, providers: Sequence[str] | None = None) -> str:
    """The runtime ``auto`` stands for on this machine (others are returned as given)."""
    if requested not in RUNTIMES:
        raise ValueError(f"unknown graph runtime {requested!r}; one of {', '.join(RUNTIMES)}")
    if requested != "auto":
        return requested
    if "CUDAExecutionProvider" in (providers if providers is not None else onnx_providers()):
        return "onnxruntime"
    return "openvino" if openvino_bf16_native() else "onnxruntime"


def load_graph(
    model_bytes: bytes,
    input_name: str,
    *,
    runtime: GraphRuntimeName = "auto",
    intra_op_threads: int = 1,
    providers: Sequence[str] | None = None,
) -> GraphRuntime:
    if intra_op_threads < 1:
        raise ValueError("intra_op_threads must be at least 1")
    if resolve_runtime(runtime, providers) == "openvino":
        return OpenVinoGraph(model_bytes, input_name, intra_op_threads=intra_op_threads)
    return OnnxRuntimeGraph(
        model_bytes, input_name, intra_op_threads=intra_op_threads, providers=providers
    )
