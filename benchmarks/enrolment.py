"""Failure to enrol: the service's own face choice and quality gates on every photo.

    python benchmarks/enrolment.py --photos ../shared/data/lfw-dev

Each photo goes through what ``POST …/faces`` runs (detection, landmarks, quality,
``indexing.face_choice.select_enrollment_face`` with ``face=auto``) and is counted as
enrolled or refused, by reason. Reported for every photo and for each person's first
photo (what a KYC onboarding sees), each with its count and 95% interval, and for the
photos with more than one face: how often the rule picked the face nearest the
centre (lfw-dev photos are centred on the labelled person), how often it called the
photo ambiguous. Prints a table and writes JSON to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.progress import track
from rich.table import Table

from indexing.calibration import IMAGE_SUFFIXES
from indexing.errors import FaceError, LowQuality, MultipleFaces, NoFace
from indexing.face_choice import select_enrollment_face
from indexing.pipeline import DetectedFace, PipelineConfig, build_pipeline
from indexing.rates import Rate

RESULTS = Path(__file__).resolve().parent / "results"


def reason(exc: FaceError) -> str:
    if isinstance(exc, NoFace):
        return "no face"
    if isinstance(exc, MultipleFaces):
        return "ambiguous: several faces"
    if isinstance(exc, LowQuality):
        return "low quality: " + exc.problems[0].split(":")[0]
    return type(exc).__name__


def centre_face(faces: list[DetectedFace]) -> DetectedFace:
    w, h = faces[0].frame
    return min(
        faces,
        key=lambda f: math.hypot(
            (f.bbox.left + f.bbox.right - w) / 2, (f.bbox.top + f.bbox.bottom - h) / 2
        ),
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--photos", type=Path, required=True, help="folder of person/photo")
    ap.add_argument("--detector", default=PipelineConfig().detector)
    ap.add_argument("--min-face-px", type=int, default=PipelineConfig().min_face_px)
    args = ap.parse_args()

    photos = sorted(
        p for p in args.photos.glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )
    pipe = build_pipeline(PipelineConfig(detector=args.detector, min_face_px=args.min_face_px))
    outcome: dict[Path, str] = {}
    multi = Counter[str]()
    for path in track(photos, description="enrol"):
        faces = pipe.detect(path.read_bytes())
        try:
            choice = select_enrollment_face(faces)
        except FaceError as exc:
            outcome[path] = reason(exc)
            if len(faces) > 1 and isinstance(exc, MultipleFaces):
                multi["ambiguous"] += 1
            continue
        outcome[path] = "enrolled"
        if len(faces) > 1:
            multi["centre face" if choice.face is centre_face(faces) else "another face"] += 1

    firsts = {p.parent.name: p for p in reversed(photos)}  # sorted: the _0001 photo
    every = Counter(outcome.values())
    first = Counter(outcome[p] for p in firsts.values())
    fte_all = Rate(len(photos) - every["enrolled"], len(photos))
    fte_first = Rate(len(firsts) - first["enrolled"], len(firsts))
    n_multi = sum(multi.values())

    table = Table(title=f"{args.photos.name}: enrolment with face=auto ({args.detector})")
    for col in ("outcome", "all photos", "first photo of each person"):
        table.add_column(col, justify="right" if col != "outcome" else "left")
    for key in sorted(every, key=lambda k: (k != "enrolled", -every[k])):
        table.add_row(key, f"{every[key]:,}", f"{first[key]:,}")
    table.add_row("failure to enrol", str(fte_all), str(fte_first))
    table.add_row(
        "photos with several faces",
        f"{n_multi}: centre face {multi['centre face']}, another {multi['another face']}, "
        f"ambiguous {multi['ambiguous']}",
        "",
    )
    Console().print(table)

    result = {
        "dataset": str(args.photos),
        "detector": args.detector,
        "min_face_px": args.min_face_px,
        "thresholds": {k: v for k, v in vars(pipe.thresholds).items()},
        "photos": len(photos),
        "people": len(firsts),
        "outcomes_all": dict(every),
        "outcomes_first_photo": dict(first),
        "fte_all": fte_all.as_dict(),
        "fte_first_photo": fte_first.as_dict(),
        "several_faces": {"photos": n_multi, **multi},
        "refused": {
            str(p.relative_to(args.photos)): o for p, o in outcome.items() if o != "enrolled"
        },
        "machine": platform.processor() or platform.machine(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"enrolment-{args.photos.stem}-{args.detector}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    Console().print(f"wrote {out}")


if __name__ == "__main__":
    main()
