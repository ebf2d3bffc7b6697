"""Where enrolment's quality gates should sit: FNMR against face size and sharpness.

    python benchmarks/quality_gates.py --pairs ../shared/data/lfw-dev

Natural photos give too few mated pairs of small or blurred faces to draw an
error-versus-reject curve (lfw-dev: 140 mated pairs, 8 photos under 80 px), so this
degrades one photo of every mated pair in steps, keeps the other as it is, and
measures FNMR at the model's shipped threshold per step: the face shrunk to a
given width (the whole photo downscaled, as a distant face is), and blurred with a
Gaussian of growing sigma. The measured quality value (face width in pixels,
sharpness on the aligned chip, as ``indexing.quality`` computes them) is recorded
per step, so a gate is read off as "below this value FNMR leaves the clean rate".
A face the detector no longer finds counts as a non-match, as in service.

Prints one table per degradation and writes JSON to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray
from rich.console import Console
from rich.progress import track
from rich.table import Table

from indexing.calibration import load_pairs
from indexing.pipeline import AnalyzedFace, FacePipeline, PipelineConfig, build_pipeline
from indexing.rates import Rate

RESULTS = Path(__file__).resolve().parent / "results"
FACE_WIDTHS = (0, 96, 80, 72, 64, 56, 48, 40, 32)  # 0: the photo as it is
BLUR_SIGMAS = (0.0, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0)

Image = NDArray[np.uint8]


def centre_face(pipe: FacePipeline, image: Image, model: str) -> AnalyzedFace | None:
    faces = pipe.analyze_image(image, model_ids=[model], nearest_centre=True, max_faces=1)
    return faces[0] if faces else None


def shrink_to(width: float) -> Callable[[Image, float], Image]:
    def apply(image: Image, face_px: float) -> Image:
        if width <= 0 or face_px <= width:
            return image
        s = width / face_px
        h, w = image.shape[:2]
        return cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), cv2.INTER_AREA)

    return apply


def blur(sigma: float) -> Callable[[Image, float], Image]:
    def apply(image: Image, face_px: float) -> Image:
        return image if sigma <= 0 else cv2.GaussianBlur(image, (0, 0), sigma)

    return apply


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--pairs", type=Path, required=True, help="folder of person/photo")
    ap.add_argument("--detector", default=PipelineConfig().detector)
    ap.add_argument("--model", default="dlib-resnet-v1-onnx")
    args = ap.parse_args()

    ps = load_pairs(args.pairs)
    pipe = build_pipeline(PipelineConfig(detector=args.detector))
    threshold = pipe.spec(args.model).threshold
    people: dict[str, list[int]] = {}
    for i, label in enumerate(ps.labels):
        people.setdefault(label, []).append(i)
    mated = [pair for ids in people.values() for pair in itertools.combinations(ids, 2)]
    images = {i: pipe.decode(ps.photos[i].read_bytes()) for pair in mated for i in pair}
    clean = {i: centre_face(pipe, img, args.model) for i, img in images.items()}

    steps: dict[str, list[tuple[str, Callable[[Image, float], Image]]]] = {
        "face width (px)": [(str(w) if w else "as is", shrink_to(w)) for w in FACE_WIDTHS],
        "blur sigma": [(f"{s:g}" if s else "none", blur(s)) for s in BLUR_SIGMAS],
    }
    result: dict[str, object] = {
        "dataset": str(args.pairs),
        "detector": args.detector,
        "model": args.model,
        "threshold": threshold,
        "mated_pairs": len(mated),
        "machine": platform.processor() or platform.machine(),
        "curves": {},
    }
    curves: dict[str, list[dict[str, object]]] = {}
    for name, levels in steps.items():
        table = Table(title=f"{args.pairs.name}: FNMR at {threshold} as {name} degrades")
        for col in ("step", "median face px", "median sharpness", "no face", "FNMR"):
            table.add_column(col, justify="right")
        rows: list[dict[str, object]] = []
        for label, degrade in levels:
            misses = no_face = 0
            face_px: list[float] = []
            sharp: list[float] = []
            # Both orders: each photo of a pair is the degraded one once.
            trials = [(a, b) for a, b in mated] + [(b, a) for a, b in mated]
            for ref, probe in track(trials, description=f"{name} {label}", transient=True):
                ref_face, probe_face = clean[ref], clean[probe]
                if ref_face is None or probe_face is None:
                    misses += 1
                    continue
                got = centre_face(
                    pipe, degrade(images[probe], probe_face.quality.face_px), args.model
                )
                if got is None:
                    no_face += 1
                    misses += 1
                    continue
                face_px.append(got.quality.face_px)
                sharp.append(got.quality.sharpness)
                score = float(got.embeddings[args.model] @ ref_face.embeddings[args.model])
                misses += score < threshold
            fnmr = Rate(int(misses), len(trials))
            row = {
                "step": label,
                "median_face_px": float(np.median(face_px)) if face_px else None,
                "median_sharpness": float(np.median(sharp)) if sharp else None,
                "no_face": no_face,
                "fnmr": fnmr.as_dict(),
            }
            rows.append(row)
            table.add_row(
                label,
                f"{row['median_face_px']:.0f}" if face_px else "-",
                f"{row['median_sharpness']:.1f}" if sharp else "-",
                str(no_face),
                str(fnmr),
            )
        curves[name] = rows
        Console().print(table)
    result["curves"] = curves

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"quality-gates-{args.pairs.stem}-{args.detector}-{args.model}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    Console().print(f"wrote {out}")


if __name__ == "__main__":
    main()
