"""Liveness: APCER/BPCER of the passive check on synthetic attacks, depth-from-motion
separation on synthetic head turns, and per-frame / passive latency.

    python benchmarks/liveness.py [--faces ../shared/data/faces] [--seeds 2] [--frames 60]
    python -m benchmarks.liveness   (the same)

Bona fide presentations are the shared photos as a webcam would send them (≤640 px,
JPEG); attacks are built from the same photos by ``liveness.attacks``: simulated print
(halftone, reduced gamut, paper texture, with and without a visible sheet edge) and
simulated screen replay (pixel grid, moiré, gamma, glare, with and without a bezel).
APCER is reported per attack species and as the worst species (ISO/IEC 30107-3);
BPCER over the bona fide images. Synthetic attacks show that the signals find the
traces they were built to find — not how real recaptures score (liveness/README.md).

Prints tables and writes ``benchmarks/results/liveness.json``.
"""

# ruff: noqa: E402 - the path fix below must run before the package imports.
from __future__ import annotations

import sys
from pathlib import Path

# This script shares its name with the ``liveness`` package it measures; run as a file,
# its own folder would come first on sys.path and shadow the package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import argparse
import json
import platform
import statistics
import time
import zlib

import cv2
import numpy as np
from PIL import Image
from rich.console import Console
from rich.progress import track
from rich.table import Table

from indexing.pipeline import FacePipeline, PipelineConfig, build_pipeline
from liveness import attacks, synthesis
from liveness.depth import DepthPolicy, verdict
from liveness.features import FeatureExtractor
from liveness.frames import measure_frame
from liveness.passive.check import THRESHOLD, PassiveChecker

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"
SPECIES = ("print", "print_framed", "screen", "screen_framed")


def webcam(image: np.ndarray, quality: int = 90) -> np.ndarray:
    h, w = image.shape[:2]
    s = min(1.0, 640 / max(h, w))
    if s < 1:
        image = cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[:, :, ::-1].copy()


def shrink(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    s = min(1.0, 640 / max(h, w))
    return cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)


def box_of(pipeline: FacePipeline, image: np.ndarray) -> tuple[float, float, float, float] | None:
    faces = pipeline.detect_image(image, max_faces=1)
    if not faces:
        return None
    b = faces[0].bbox
    return (b.left, b.top, b.right, b.bottom)


def attack(kind: str, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    framed = kind.endswith("_framed")
    if kind.startswith("print"):
        return attacks.simulated_print(image, rng, border=framed)
    return attacks.simulated_screen(image, rng, border=framed)


def passive_errors(
    pipeline: FacePipeline, checker: PassiveChecker, photos: list[Path], seeds: int
) -> dict:
    bona: list[float] = []
    by_species: dict[str, list[float]] = {s: [] for s in SPECIES}
    undetected = {"bona_fide": 0, **{s: 0 for s in SPECIES}}
    timings: list[float] = []
    with_detect: list[float] = []
    cpu: list[float] = []
    for path in track(photos, description="passive: photos"):
        base = shrink(np.asarray(Image.open(path).convert("RGB")))
        for quality in (95, 85):
            frame = webcam(base, quality)
            t0 = time.perf_counter()
            box = box_of(pipeline, frame)
            if box is None:
                undetected["bona_fide"] += 1
                continue
            t1 = time.perf_counter()
            c1 = time.process_time()
            bona.append(checker(frame, box).score)
            t2 = time.perf_counter()
            cpu.append((time.process_time() - c1) * 1000)
            timings.append((t2 - t1) * 1000)
            with_detect.append((t2 - t0) * 1000)
        for seed in range(seeds):
            rng = np.random.default_rng(seed * 1000 + zlib.crc32(path.name.encode()) % 1000)
            for species in SPECIES:
                frame = webcam(attack(species, base, rng))
                box = box_of(pipeline, frame)
                if box is None:
                    # No face found: the attack is rejected before liveness (not counted).
                    undetected[species] += 1
                    continue
                by_species[species].append(checker(frame, box).score)
    apcer = {s: float(np.mean([v >= THRESHOLD for v in by_species[s]])) for s in SPECIES}
    return {
        "threshold": THRESHOLD,
        "bona_fide": len(bona),
        "attacks": {s: len(v) for s, v in by_species.items()},
        "undetected": undetected,
        "bpcer": float(np.mean([v < THRESHOLD for v in bona])),
        "apcer": apcer,
        "apcer_worst_species": max(apcer.values()),
        "bona_fide_score_median": float(np.median(bona)),
        "attack_score_median": {s: float(np.median(v)) for s, v in by_species.items() if v},
        "check_ms_median": float(np.median(timings)),
        "detect_and_check_ms_median": float(np.median(with_detect)),
        "check_cpu_ms_median": float(np.median(cpu)),
    }


def depth_separation(
    pipeline: FacePipeline, extractor: FeatureExtractor, photos: list[Path]
) -> dict:
    """Tracked depth score of a rendered 3-D head turn vs the same photo turned flat."""
    policy = DepthPolicy()
    results: dict[str, list[float]] = {"3d": [], "planar": []}
    yaws = (0, 8, 16, 24, 30, 20, 10, 0, -10, -20, -30)
    for path in track(photos, description="depth: photos"):
        frame = webcam(np.asarray(Image.open(path).convert("RGB")))
        box = box_of(pipeline, frame)
        if box is None:
            continue
        mesh = extractor.mesh(frame, box)
        if mesh is None:
            continue
        centre = tuple(mesh.points[:, :2].mean(axis=0))
        for kind in results:
            track_state = None
            pairs = []
            for yaw in yaws:
                image = (
                    synthesis.render_pose(frame, mesh.points, yaw)
                    if kind == "3d"
                    else synthesis.planar_pose(frame, centre, yaw * 1.3)
                )
                m = measure_frame(extractor, image, box, track_state)
                track_state = m.track
                if m.motion is not None:
                    pairs.append(m.motion)
            result = verdict(pairs, policy)
            if result.score is not None:
                results[kind].append(result.score)
    return {
        "planar_ratio_threshold": policy.planar_ratio,
        "real_3d_scores": [round(v, 3) for v in results["3d"]],
        "planar_scores": [round(v, 3) for v in results["planar"]],
        "real_3d_failed": int(sum(v <= policy.planar_ratio for v in results["3d"])),
        "planar_passed": int(sum(v > policy.planar_ratio for v in results["planar"])),
    }


def frame_latency(
    pipeline: FacePipeline, extractor: FeatureExtractor, photo: Path, n: int, model_id: str
) -> dict:
    """Per-frame cost on a 640×480 frame: detect, mesh (2 passes), iris, geometry and
    tracking; embedding reported apart (the session also embeds each frame)."""
    image = np.asarray(Image.open(photo).convert("RGB"))
    frame = cv2.resize(image, (640, 480), interpolation=cv2.INTER_AREA)
    box = box_of(pipeline, frame)
    assert box is not None, "no face in the latency frame"
    mesh = extractor.mesh(frame, box)
    assert mesh is not None
    frames = [synthesis.render_pose(frame, mesh.points, yaw) for yaw in np.linspace(-20, 20, 9)]
    stages: dict[str, list[float]] = {
        "detect": [],
        "mesh+iris+checks": [],
        "mesh+iris+checks CPU": [],
        "embed": [],
    }
    totals: list[float] = []
    cpu_totals: list[float] = []
    first = measure_frame(extractor, frames[0], box, None)
    track_state = first.track
    for i in range(n):
        f = frames[i % len(frames)]
        c0 = time.process_time()
        t0 = time.perf_counter()
        found = pipeline.detector.detect(f)
        t1 = time.perf_counter()
        c1 = time.process_time()
        b = found[0].bbox if found else None
        fbox = (b.left, b.top, b.right, b.bottom) if b else box
        measured = measure_frame(extractor, f, fbox, track_state)
        track_state = measured.track
        t2 = time.perf_counter()
        cpu_totals.append((time.process_time() - c0) * 1000)
        stages["detect"].append((t1 - t0) * 1000)
        stages["mesh+iris+checks CPU"].append((time.process_time() - c1) * 1000)
        stages["mesh+iris+checks"].append((t2 - t1) * 1000)
        totals.append((t2 - t0) * 1000)
        if i < 10:
            t3 = time.perf_counter()
            pipeline.analyze_image(f, model_ids=[model_id], max_faces=1)
            stages["embed"].append((time.perf_counter() - t3) * 1000)
    return {
        "frames": n,
        "median_ms": {k: float(statistics.median(v)) for k, v in stages.items()},
        "per_frame_median_ms": float(statistics.median(totals)),
        "per_frame_p90_ms": float(np.percentile(totals, 90)),
        # CPU time of this process: on a shared, oversubscribed machine the wall time
        # mostly measures the other tenants.
        "per_frame_cpu_median_ms": float(statistics.median(cpu_totals)),
        "note": f"embed = the full analyze_image (detect + 5-point + {model_id}), 10 frames",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=Path, default=DEFAULT_FACES, help="shared faces folder")
    parser.add_argument("--seeds", type=int, default=2, help="attack variants per species")
    parser.add_argument("--frames", type=int, default=60, help="frames for the latency run")
    parser.add_argument(
        "--model", default="dlib-resnet-v1-onnx", help="embedding model a session runs per frame"
    )
    args = parser.parse_args()
    photos = sorted(
        p for p in (args.faces / "identities").glob("*/*") if p.suffix in {".jpg", ".png"}
    )
    pipeline = build_pipeline(PipelineConfig())
    extractor = FeatureExtractor()
    checker = PassiveChecker()
    console = Console()

    passive = passive_errors(pipeline, checker, photos, args.seeds)
    depth = depth_separation(pipeline, extractor, photos)
    latency = frame_latency(pipeline, extractor, photos[0], args.frames, args.model)

    table = Table(title=f"Passive check (threshold {THRESHOLD}) on synthetic attacks")
    table.add_column("presentations")
    table.add_column("n", justify="right")
    table.add_column("error", justify="right")
    table.add_column("median score", justify="right")
    table.add_row(
        "bona fide",
        str(passive["bona_fide"]),
        f"BPCER {passive['bpcer']:.1%}",
        f"{passive['bona_fide_score_median']:.2f}",
    )
    for s in SPECIES:
        table.add_row(
            s,
            str(passive["attacks"][s]),
            f"APCER {passive['apcer'][s]:.1%}",
            f"{passive['attack_score_median'].get(s, float('nan')):.2f}",
        )
    table.add_row("worst species", "", f"APCER {passive['apcer_worst_species']:.1%}", "")
    console.print(table)

    dt = Table(title="Depth from motion (tracked planarity score; ≤ threshold = planar)")
    dt.add_column("sequence")
    dt.add_column("n", justify="right")
    dt.add_column("median score", justify="right")
    dt.add_column("misjudged", justify="right")
    dt.add_row(
        "3-D head turn (rendered)",
        str(len(depth["real_3d_scores"])),
        f"{np.median(depth['real_3d_scores']):.2f}",
        str(depth["real_3d_failed"]),
    )
    dt.add_row(
        "flat photo turned",
        str(len(depth["planar_scores"])),
        f"{np.median(depth['planar_scores']):.2f}",
        str(depth["planar_passed"]),
    )
    console.print(dt)

    lt = Table(title="Latency on 640×480 (median ms; shared 2-core machine, noisy)")
    lt.add_column("stage")
    lt.add_column("ms", justify="right")
    for k, v in latency["median_ms"].items():
        lt.add_row(k, f"{v:.1f}")
    lt.add_row("per frame: detect + mesh + iris + checks", f"{latency['per_frame_median_ms']:.1f}")
    lt.add_row("  the same, CPU time", f"{latency['per_frame_cpu_median_ms']:.1f}")
    lt.add_row("passive check (signals only)", f"{passive['check_ms_median']:.1f}")
    lt.add_row("  the same, CPU time", f"{passive['check_cpu_ms_median']:.1f}")
    lt.add_row("passive check incl. detect", f"{passive['detect_and_check_ms_median']:.1f}")
    console.print(lt)

    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "liveness.json"
    out.write_text(
        json.dumps(
            {
                "machine": platform.platform(),
                "processor": platform.processor(),
                "passive": passive,
                "depth": depth,
                "latency": latency,
            },
            indent=2,
        )
    )
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
