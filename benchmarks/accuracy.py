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
non-match, so detection failures show up in FNMR as they would in service.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from rich.console import Console
from rich.progress import track
from rich.table import Table

from indexing.pipeline import PipelineConfig, build_pipeline

RESULTS = Path(__file__).resolve().parent / "results"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
TARGET_FMRS = (1e-2, 1e-3, 1e-4)


@dataclass
class PairSet:
    photos: list[Path]
    labels: list[str]  # person of each photo
    # Explicit pairs (indices into photos, genuine?) or None for all pairs.
    pairs: list[tuple[int, int, bool]] | None


def _from_folder(root: Path) -> PairSet:
    photos = sorted(
        p for p in root.glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )
    return PairSet(photos, [p.parent.name for p in photos], None)


def _lfw_txt_rows(path: Path) -> list[tuple[str, str, bool]]:
    rows = []
    for line in path.read_text().splitlines()[1:]:
        f = line.split()
        if len(f) == 3:
            rows.append(
                (f"{f[0]}/{f[0]}_{int(f[1]):04d}.jpg", f"{f[0]}/{f[0]}_{int(f[2]):04d}.jpg", True)
            )
        elif len(f) == 4:
            rows.append(
                (f"{f[0]}/{f[0]}_{int(f[1]):04d}.jpg", f"{f[2]}/{f[2]}_{int(f[3]):04d}.jpg", False)
            )
    return rows


def _from_pairs_file(path: Path) -> PairSet:
    if path.suffix == ".csv":
        with path.open() as fh:
            rows = [
                (r["img1"], r["img2"], r["same"].strip() in ("1", "true", "True"))
                for r in csv.DictReader(fh)
            ]
    else:
        rows = _lfw_txt_rows(path)
    index: dict[str, int] = {}
    for a, b, _ in rows:
        index.setdefault(a, len(index))
        index.setdefault(b, len(index))
    photos = [path.parent / rel for rel in index]
    labels = [Path(rel).parent.name for rel in index]
    return PairSet(photos, labels, [(index[a], index[b], same) for a, b, same in rows])


def _scores(
    embs: NDArray[np.float32], found: NDArray[np.bool_], ps: PairSet
) -> tuple[NDArray, NDArray]:
    sim = embs @ embs.T
    sim[~found, :] = -1.0
    sim[:, ~found] = -1.0
    if ps.pairs is not None:
        idx = np.array([(a, b) for a, b, _ in ps.pairs])
        same = np.array([s for _, _, s in ps.pairs])
        s = sim[idx[:, 0], idx[:, 1]]
        return s[same], s[~same]
    labels = np.array(ps.labels)
    iu = np.triu_indices(len(labels), k=1)
    same = labels[iu[0]] == labels[iu[1]]
    s = sim[iu]
    return s[same], s[~same]


def roc_auc(genuine: NDArray, impostor: NDArray) -> float:
    """P(genuine score > impostor score), ties counted half (Mann–Whitney U)."""
    allv = np.concatenate([genuine, impostor])
    order = allv.argsort(kind="mergesort")
    ranks = np.empty(len(allv))
    sorted_v = allv[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_v, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1
    ranks[order] = np.repeat(avg, counts)
    u = ranks[: len(genuine)].sum() - len(genuine) * (len(genuine) + 1) / 2
    return float(u / (len(genuine) * len(impostor)))


def threshold_at_fmr(impostor: NDArray, fmr: float) -> float:
    """Smallest threshold whose false-match rate (score ≥ threshold) is ≤ ``fmr``."""
    s = np.sort(impostor)[::-1]
    k = int(np.floor(fmr * len(s)))  # at most k impostors may pass
    if k >= len(s):
        return float(s[-1])
    return float(np.nextafter(s[k], np.float32(np.inf)))


def rates(genuine: NDArray, impostor: NDArray, threshold: float) -> tuple[float, float]:
    return float((impostor >= threshold).mean()), float((genuine < threshold).mean())


def best_accuracy(genuine: NDArray, impostor: NDArray) -> tuple[float, float]:
    """Best balanced accuracy over thresholds, as LFW reports it (equal class weight)."""
    cands = np.unique(np.concatenate([genuine, impostor]))
    best = (0.0, 0.0)
    for t in cands[:: max(1, len(cands) // 4000)]:
        fmr, fnmr = rates(genuine, impostor, float(t))
        acc = 1 - (fmr + fnmr) / 2
        if acc > best[0]:
            best = (acc, float(t))
    return best


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
    ap.add_argument("--limit", type=int, default=None, help="only the first N photos (smoke runs)")
    ap.add_argument("--name", default=None, help="result file stem (default from the options)")
    args = ap.parse_args()

    ps = _from_folder(args.pairs) if args.pairs.is_dir() else _from_pairs_file(args.pairs)
    if args.limit:
        ps = PairSet(ps.photos[: args.limit], ps.labels[: args.limit], None)
    cfg = PipelineConfig(detector=args.detector, model_dir=args.model_dir, flip_average=args.flip)
    pipe = build_pipeline(cfg)
    spec = pipe.spec(args.model)
    embs = np.zeros((len(ps.photos), spec.dim), dtype=np.float32)
    found = np.zeros(len(ps.photos), dtype=bool)
    t0 = time.perf_counter()
    for i, path in enumerate(track(ps.photos, description=f"{args.detector} + {args.model}")):
        image = pipe.decode(path.read_bytes())
        faces = pipe.analyze_image(
            image, model_ids=[args.model], nearest_centre=args.pick == "centre", max_faces=1
        )
        if faces:
            embs[i], found[i] = faces[0].embeddings[args.model], True
    elapsed = time.perf_counter() - t0
    genuine, impostor = _scores(embs, found, ps)

    result: dict[str, object] = {
        "dataset": str(args.pairs),
        "detector": args.detector,
        "model": args.model,
        "flip_average": args.flip,
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
        result[f"fmr_{fmr:g}"] = {"threshold": t, "fnmr": fnmr, "fmr": got_fmr}
    fmr, fnmr = rates(genuine, impostor, spec.threshold)
    result["default_threshold"] = {
        "threshold": spec.threshold,
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
            table.add_row(
                f"FNMR at FMR {fmr_t:g} (threshold)", f"{r['fnmr']:.2%} ({r['threshold']:.4f})"
            )
    d = result["default_threshold"]
    assert isinstance(d, dict)
    table.add_row(
        f"at default threshold {spec.threshold}",
        f"FMR {d['fmr']:.2e}, FNMR {d['fnmr']:.2%}, errors {d['errors']}",
    )
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
