"""Per-stage latency of the face pipeline for every detector and embedder, one run.

    python benchmarks/pipeline_latency.py [--repeats 15] [--model-dir DIR]

Stages: decode, detect, landmarks + align, quality, embed; for a 640×480 and a
1920×1080 JPEG (made from a shared one-face photo), one image at a time and as a
batch of 8 through ``analyze_many`` (embed time per face). Medians in ms. Target:
decode + detect + landmarks + align of a 640×480 photo ≤ 10 ms median. Writes
``benchmarks/results/pipeline_latency.json``. Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
from pathlib import Path

from PIL import Image
from rich.console import Console
from rich.progress import track
from rich.table import Table

from indexing.detection.factory import DETECTORS
from indexing.errors import ModelUnavailable
from indexing.pipeline import FacePipeline, PipelineConfig, build_pipeline
from indexing.timings import STAGES, StageTimings

ROOT = Path(__file__).resolve().parent
PHOTO = ROOT.parent.parent / "shared" / "data" / "faces" / "identities" / "obama" / "obama4.jpg"
SIZES = {"640x480": (640, 480), "1920x1080": (1920, 1080)}
BATCH = 8


def _jpeg(size: tuple[int, int]) -> bytes:
    with Image.open(PHOTO) as im:
        im = im.convert("RGB")
        w, h = im.size
        target = size[0] / size[1]
        if w / h > target:  # crop to the aspect ratio, centred, then resize
            cw = round(h * target)
            im = im.crop(((w - cw) // 2, 0, (w - cw) // 2 + cw, h))
        else:
            ch = round(w / target)
            im = im.crop((0, (h - ch) // 2, w, (h - ch) // 2 + ch))
        buf = io.BytesIO()
        im.resize(size, Image.Resampling.LANCZOS).save(buf, "JPEG", quality=90)
        return buf.getvalue()


def _median_ms(samples: list[StageTimings], per: int = 1) -> dict[str, float]:
    return {s: statistics.median(t.seconds[s] for t in samples) * 1000 / per for s in STAGES}


def _measure(
    pipe: FacePipeline, data: bytes, model: str, repeats: int
) -> tuple[dict[str, float], dict[str, float], int]:
    faces = pipe.analyze(data, model_ids=[model])  # warm-up: loads every runtime
    single = []
    for _ in range(repeats):
        t = StageTimings()
        pipe.analyze(data, model_ids=[model], timings=t)
        single.append(t)
    batched = []
    for _ in range(max(2, repeats // 4)):
        t = StageTimings()
        pipe.analyze_many([data] * BATCH, model_ids=[model], timings=t)
        batched.append(t)
    return _median_ms(single), _median_ms(batched, per=BATCH), len(faces)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeats", type=int, default=15, help="timed runs per configuration")
    ap.add_argument(
        "--model-dir", type=Path, default=None, help="FACEPRINT_MODEL_DIR (ArcFace pack)"
    )
    ap.add_argument("--detectors", nargs="*", default=list(DETECTORS), help="detector names")
    args = ap.parse_args()

    images = {name: _jpeg(size) for name, size in SIZES.items()}
    rows = []
    for detector in args.detectors:
        try:
            pipe = build_pipeline(PipelineConfig(detector=detector, model_dir=args.model_dir))
        except ModelUnavailable as exc:  # e.g. SCRFD without a pack: say so, go on
            Console().print(f"skipped {detector}: {exc.reason}")
            continue
        models = [m for m in pipe.models.ids() if pipe.models.available(m)]
        for model in models:
            for size, data in track(list(images.items()), description=f"{detector} + {model}"):
                single, batched, n_faces = _measure(pipe, data, model, args.repeats)
                for mode, ms in (("one image", single), (f"batch of {BATCH}", batched)):
                    front = ms["decode"] + ms["detect"] + ms["landmarks_align"]
                    rows.append(
                        {
                            "detector": detector,
                            "model": model,
                            "size": size,
                            "mode": mode,
                            "faces": n_faces,
                            **{k: round(v, 2) for k, v in ms.items()},
                            "decode_to_align": round(front, 2),
                            "total": round(sum(ms.values()), 2),
                        }
                    )

    table = Table(title="Pipeline latency, median ms per image (batch: per image of 8)")
    for col in ("detector", "model", "size", "mode", "faces", *STAGES, "decode→align", "total"):
        table.add_column(
            col, justify="left" if col in ("detector", "model", "size", "mode") else "right"
        )
    for r in rows:
        table.add_row(
            r["detector"],
            r["model"],
            r["size"],
            r["mode"],
            str(r["faces"]),
            *(f"{r[s]:.1f}" for s in STAGES),
            f"{r['decode_to_align']:.1f}",
            f"{r['total']:.1f}",
        )
    Console(width=200).print(table)
    out = ROOT / "results" / "pipeline_latency.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "repeats": args.repeats,
        "photo": PHOTO.name,
        "note": "shared 2-core machine; noisy",
    }
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    Console().print(f"wrote {out}")


if __name__ == "__main__":
    main()
