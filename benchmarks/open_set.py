"""Open-set search at scale: how often a stranger is "found" in a gallery of N people.

    python benchmarks/open_set.py --pairs ../shared/data/lfw-dev

A search for someone who is not enrolled is a false positive identification when any
of the gallery's N subjects clears the threshold. With a false-match rate FMR(t) per
comparison and comparisons independent, FPIR(N, t) = 1 - (1 - FMR(t))^N: at the
verify threshold (FMR 1e-3), a gallery of 1,000 strangers already answers "found" two
times in three. This script

1. measures FMR(t) on lfw-dev's ~1.2 million different-person pairs (the face nearest
   each photo's centre, as ``benchmarks/accuracy.py`` does);
2. checks the independence model where it can be checked: every photo searched
   against a gallery of one photo per *other* person (N = people - 1), the measured
   FPIR beside the model's;
3. tabulates, for N = 1k, 10k, 100k and 1M, the FPIR at the shipped threshold and the
   threshold that keeps FPIR at 1% (FMR = 1 - 0.99^(1/N)). That FMR must be
   measured with some grain: at least ``MIN_TAIL`` impostor pairs above the threshold;
   where there are fewer, the table says so instead of inventing a tail.

Prints a table and writes JSON to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table

from indexing.calibration import embed_photos, load_pairs, pair_scores
from indexing.pipeline import PipelineConfig, build_pipeline
from indexing.rates import Rate
from indexing.rates import fpir_independent as fpir

RESULTS = Path(__file__).resolve().parent / "results"
SIZES = (1_000, 10_000, 100_000, 1_000_000)
TARGET_FPIR = 0.01
MIN_TAIL = 10


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
    spec = pipe.spec(args.model)
    embedded = embed_photos(
        pipe, ps.photos, args.model, spec.dim, progress=lambda p: track(p, description="embed")
    )
    scores = pair_scores(embedded, ps)
    genuine = scores.genuine
    impostor = np.sort(scores.impostor)[::-1]
    n_imp = len(impostor)
    t0 = spec.threshold
    k0 = int((impostor >= t0).sum())
    fmr0 = Rate(k0, n_imp)

    # 2. Measured FPIR with a gallery of one photo (the first) per other person.
    labels = np.array(ps.labels)
    first: dict[str, int] = {}
    for i, label in enumerate(ps.labels):
        first.setdefault(label, i)
    gallery = np.array(sorted(first.values()))
    vectors, found = embedded.vectors, embedded.found
    sims = vectors @ vectors[gallery].T
    sims[~found, :] = -1.0
    sims[:, ~found[gallery]] = -1.0
    sims[labels[:, None] == labels[gallery][None, :]] = -1.0  # never the probe's own person
    probes = np.flatnonzero(found)
    best = sims[probes].max(axis=1)
    hits = int((best >= t0).sum())
    measured = Rate(hits, len(probes))
    # The threshold that a measured 1% of strangers clear, at this gallery size.
    measured_t1 = float(np.quantile(best, 1 - TARGET_FPIR))
    n_measured = len(gallery) - 1
    modelled = fpir(fmr0.value, n_measured)
    lo, hi = fmr0.interval

    rows = []
    for n in SIZES:
        want_fmr = -float(np.expm1(np.log1p(-TARGET_FPIR) / n))
        k_allowed = int(np.floor(want_fmr * n_imp))
        measurable = k_allowed >= MIN_TAIL
        threshold = (
            float(np.nextafter(impostor[k_allowed], np.float32(np.inf))) if measurable else None
        )
        rows.append(
            {
                "gallery_size": n,
                "fpir_at_shipped_threshold": fpir(fmr0.value, n),
                "fpir_ci95": [fpir(lo, n), fpir(hi, n)],
                "fmr_for_1pct_fpir": want_fmr,
                "impostor_pairs_above_it": k_allowed,
                "threshold_for_1pct_fpir": threshold,
                "measurable": measurable,
                # What that threshold costs the enrolled: same-person pairs it misses.
                "fnmr_there": Rate(int((genuine < threshold).sum()), len(genuine)).as_dict()
                if threshold is not None
                else None,
            }
        )

    table = Table(title=f"{args.pairs.name}: open-set FPIR by gallery size ({args.model})")
    cols = ("gallery size", f"FPIR at {t0}", "threshold for FPIR 1%", "FMR it needs", "FNMR there")
    for col in cols:
        table.add_column(col, justify="right")
    for r in rows:
        low, high = r["fpir_ci95"]
        table.add_row(
            f"{r['gallery_size']:,}",
            f"{r['fpir_at_shipped_threshold']:.1%} ({low:.1%}–{high:.1%})",
            f"{r['threshold_for_1pct_fpir']:.4f}"
            if r["measurable"]
            else f"not measurable (> {impostor[0]:.4f})",
            f"{r['fmr_for_1pct_fpir']:.1e} ({r['impostor_pairs_above_it']} of {n_imp:,})",
            str(Rate(r["fnmr_there"]["k"], r["fnmr_there"]["n"])) if r["fnmr_there"] else "-",
        )
    Console().print(table)
    Console().print(
        f"model check at N = {n_measured:,}: measured FPIR {measured}, "
        f"independence model {modelled:.1%} ({fpir(lo, n_measured):.1%}–"
        f"{fpir(hi, n_measured):.1%}); FMR at {t0}: {fmr0}; measured threshold for "
        f"FPIR 1% there: {measured_t1:.4f}"
    )

    result = {
        "dataset": str(args.pairs),
        "detector": args.detector,
        "model": args.model,
        "threshold": t0,
        "impostor_pairs": n_imp,
        "fmr_at_threshold": fmr0.as_dict(),
        "max_impostor_score": float(impostor[0]),
        "check": {
            "gallery_size": n_measured,
            "measured_fpir": measured.as_dict(),
            "modelled_fpir": modelled,
            "modelled_ci95": [fpir(lo, n_measured), fpir(hi, n_measured)],
            "measured_threshold_for_1pct_fpir": measured_t1,
        },
        "sizes": rows,
        "wilson_note": "FMR intervals treat impostor pairs as independent; they share photos",
        "machine": platform.processor() or platform.machine(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"open-set-{args.pairs.stem}-{args.detector}-{args.model}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    Console().print(f"wrote {out}")


if __name__ == "__main__":
    main()
