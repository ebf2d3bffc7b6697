"""Verification accuracy of the face pipeline on labelled photos.

    python benchmarks/accuracy.py --pairs ../shared/data/lfw-dev
    python benchmarks/accuracy.py --pairs ../shared/data/lfw-dev/pairs.csv
    python benchmarks/accuracy.py --pairs ../shared/data/faces/identities --detector dlib-hog-up1

``--pairs`` is a folder of ``person/photo`` images (every same-folder pair is
genuine, every cross-folder pair an impostor) or a pairs file: CSV ``img1,img2,same``
or LFW's ``pairs.txt``. Prints accuracy, ROC AUC, FNMR at FMR 1e-2 and 1e-3, the
thresholds that give those FMRs (the calibration), the rate of photos with no face,
and writes everything as JSON to ``benchmarks/results/``.

A photo where no face is found scores -1 against everything: it counts as a
non-match, so detection failures show up in FNMR as they would in service. The pair
sets and the maths are ``indexing.calibration``'s, shared with ``faceprint models
calibrate``, which writes the threshold the service then uses.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table

from indexing.calibration import (
    PairSet,
    best_accuracy,
    embed_photos,
    load_pairs,
    pair_scores,
    rates,
    roc_auc,
    threshold_at_fmr,
)
from indexing.pipeline import PipelineConfig, build_pipeline
from indexing.rates import Rate

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_FMRS = (1e-2, 1e-3, 1e-4)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--pairs", type=Path, required=True, help="folder of person/photo, or pairs file"
    )
    ap.add_argument(
        "--detector", default="blazeface", help="detector name (see indexing.detection.factory)"
    )
    ap.add_argument("--model", default="dlib-resnet-v1", help="model id")
    ap.add_argument(
        "--flip",
        action=argparse.BooleanOptionalAction,
        default=PipelineConfig().flip_average,
        help="average embeddings with the mirror image (default: the pipeline's default)",
    )
    ap.add_argument(
        "--pick", choices=["centre", "largest"], default="centre", help="which face of a photo"
    )
    ap.add_argument(
        "--model-dir", type=Path, default=None, help="FACEPRINT_MODEL_DIR for ONNX packs"
    )
    ap.add_argument(
        "--runtime",
        choices=["auto", "onnxruntime", "openvino"],
        default="auto",
        help="what runs an ONNX embedder (FACEPRINT_EMBED_RUNTIME)",
    )
    ap.add_argument("--limit", type=int, default=None, help="only the first N photos (smoke runs)")
    ap.add_argument("--name", default=None, help="result file stem (default from the options)")
    args = ap.parse_args()

    ps = load_pairs(args.pairs)
    if args.limit:
        ps = PairSet(ps.photos[: args.limit], ps.labels[: args.limit], None)
    cfg = PipelineConfig(
        detector=args.detector,
        model_dir=args.model_dir,
        flip_average=args.flip,
        graph_runtime=args.runtime,
    )
    pipe = build_pipeline(cfg)
    spec = pipe.spec(args.model)
    graph = getattr(pipe.models.embedder(args.model), "runtime", None)
    t0 = time.perf_counter()
    embedded = embed_photos(
        pipe,
        ps.photos,
        args.model,
        spec.dim,
        nearest_centre=args.pick == "centre",
        progress=lambda photos: track(photos, description=f"{args.detector} + {args.model}"),
    )
    elapsed = time.perf_counter() - t0
    found = embedded.found
    scores = pair_scores(embedded, ps)
    genuine, impostor = scores.genuine, scores.impostor

    result: dict[str, object] = {
        "dataset": str(args.pairs),
        "detector": args.detector,
        "model": args.model,
        "flip_average": args.flip,
        "runtime": graph.description if graph is not None else "dlib-bin",
        "pick": args.pick,
        "photos": len(ps.photos),
        "no_face": int((~found).sum()),
        "no_face_rate": float((~found).mean()),
        "no_face_photos": [
            str(p.relative_to(p.parent.parent))
            for p, f in zip(ps.photos, found, strict=True)
            if not f
        ],
        "genuine_pairs": len(genuine),
        "impostor_pairs": len(impostor),
        "roc_auc": roc_auc(genuine, impostor),
        # The cone the embeddings sit in (what benchmarks/search_data.py generates).
        "genuine_mean_cosine": float(np.mean(genuine)) if len(genuine) else None,
        "impostor_mean_cosine": float(np.mean(impostor)) if len(impostor) else None,
        "seconds": round(elapsed, 1),
        "machine": platform.processor() or platform.machine(),
    }
    acc, acc_t = best_accuracy(genuine, impostor)
    result["best_accuracy"], result["best_accuracy_threshold"] = acc, acc_t
    for fmr in TARGET_FMRS:
        if fmr * len(impostor) < 1:
            continue
        t = threshold_at_fmr(impostor, fmr)
        got_fmr, fnmr = rates(genuine, impostor, t)
        result[f"fmr_{fmr:g}"] = {
            "threshold": t,
            "fnmr": fnmr,
            "fmr": got_fmr,
            "fnmr_rate": Rate(int((genuine < t).sum()), len(genuine)).as_dict(),
        }
    fmr, fnmr = rates(genuine, impostor, spec.threshold)
    fnmr_rate = Rate(int((genuine < spec.threshold).sum()), len(genuine))
    # Impostor pairs share photos, so this interval is narrower than the data supports.
    fmr_rate = Rate(int((impostor >= spec.threshold).sum()), len(impostor))
    result["no_face_rate_ci"] = Rate(int((~found).sum()), len(ps.photos)).as_dict()
    result["default_threshold"] = {
        "threshold": spec.threshold,
        "fmr_rate": fmr_rate.as_dict(),
        "fnmr_rate": fnmr_rate.as_dict(),
        "fmr": fmr,
        "fnmr": fnmr,
        "accuracy": 1 - (fmr + fnmr) / 2,
        "errors": int((impostor >= spec.threshold).sum() + (genuine < spec.threshold).sum()),
    }

    flip_note = " + mirror averaging" if args.flip else ""
    table = Table(title=f"{args.pairs.name}: {args.detector} + {args.model}{flip_note}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row(
        "photos / no face found",
        f"{len(ps.photos)} / {result['no_face']} ({result['no_face_rate']:.2%})",
    )
    table.add_row("genuine / impostor pairs", f"{len(genuine):,} / {len(impostor):,}")
    table.add_row("best accuracy (threshold)", f"{acc:.4f} ({acc_t:.4f})")
    table.add_row("ROC AUC", f"{result['roc_auc']:.5f}")
    for fmr_t in TARGET_FMRS:
        r = result.get(f"fmr_{fmr_t:g}")
        if isinstance(r, dict):
            k = r["fnmr_rate"]["k"]
            table.add_row(
                f"FNMR at FMR {fmr_t:g} (threshold {r['threshold']:.4f})",
                str(Rate(int(k), len(genuine))),
            )
    d = result["default_threshold"]
    assert isinstance(d, dict)
    table.add_row(f"FNMR at the shipped threshold {spec.threshold}", str(fnmr_rate))
    table.add_row(f"FMR at the shipped threshold {spec.threshold}", str(fmr_rate))
    table.add_row("time", f"{elapsed:.0f} s ({elapsed / len(ps.photos) * 1000:.0f} ms/photo)")
    Console().print(table)

    RESULTS.mkdir(parents=True, exist_ok=True)
    flip_tag = "-flip" if args.flip else ""
    stem = args.name or f"accuracy-{args.pairs.stem}-{args.detector}-{args.model}{flip_tag}"
    out = RESULTS / f"{stem}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    Console().print(f"wrote {out}")


if __name__ == "__main__":
    main()
