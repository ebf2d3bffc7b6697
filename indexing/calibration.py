"""Decision thresholds from labelled photos: pair sets, scores, ROC AUC, the threshold at
a target false-match rate, and the calibration records the model registry reads.

One implementation for ``benchmarks/accuracy.py`` (which reports) and
``faceprint models calibrate`` (which writes a record the service then uses).

Pair sets come from a folder of ``person/photo`` images (every same-folder pair is
genuine, every cross-folder pair an impostor) or a pairs file: CSV ``img1,img2,same``
or LFW's ``pairs.txt``. A photo where no face is found scores -1 against everything:
it counts as a non-match, so detection failures show up in FNMR as they would in
service.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from indexing.errors import ImageError
from indexing.files import atomic_write


class PhotoEmbedder(Protocol):
    """The face pipeline's calls :func:`embed_photos` needs. A protocol, not
    ``FacePipeline`` itself: the pipeline builds the registry, which reads the records
    written here, so importing it would close a cycle."""

    def decode(self, data: bytes) -> NDArray[np.uint8]: ...

    def analyze_image(
        self,
        image: NDArray[np.uint8],
        *,
        model_ids: Sequence[str],
        nearest_centre: bool = ...,
        max_faces: int | None = ...,
    ) -> Sequence[Any]: ...


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
Scores = NDArray[np.float32]


@dataclass
class PairSet:
    photos: list[Path]
    labels: list[str]  # person of each photo
    # Explicit pairs (indices into photos, genuine?) or None for all pairs.
    pairs: list[tuple[int, int, bool]] | None


def pairs_from_folder(root: Path) -> PairSet:
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


def pairs_from_file(path: Path) -> PairSet:
    """A CSV ``img1,img2,same`` or LFW's ``pairs.txt``; paths relative to the file."""
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


def load_pairs(path: Path) -> PairSet:
    return pairs_from_folder(path) if path.is_dir() else pairs_from_file(path)


def pair_counts(ps: PairSet) -> tuple[int, int]:
    """(genuine, impostor) pairs of the set, before any photo is looked at."""
    if ps.pairs is not None:
        genuine = sum(1 for _, _, same in ps.pairs if same)
        return genuine, len(ps.pairs) - genuine
    sizes = np.unique(np.array(ps.labels), return_counts=True)[1] if ps.labels else np.zeros(0)
    genuine = int((sizes * (sizes - 1) // 2).sum())
    n = len(ps.photos)
    return genuine, n * (n - 1) // 2 - genuine


@dataclass
class Embedded:
    """One vector per photo of a pair set (zeros where ``found`` is False)."""

    vectors: NDArray[np.float32]
    found: NDArray[np.bool_]
    # Photos that did not decode, with the reason; they count as "no face found".
    unreadable: dict[Path, str]


def embed_photos(
    pipe: PhotoEmbedder,
    photos: Sequence[Path],
    model_id: str,
    dim: int,
    *,
    nearest_centre: bool = True,
    progress: Callable[[Sequence[Path]], Iterable[Path]] = lambda photos: photos,
) -> Embedded:
    """The embedding of one face per photo: the face nearest the centre (LFW-style photos
    centred on their person), or the largest."""
    vectors = np.zeros((len(photos), dim), dtype=np.float32)
    found = np.zeros(len(photos), dtype=bool)
    unreadable: dict[Path, str] = {}
    for i, path in enumerate(progress(photos)):
        try:
            image = pipe.decode(path.read_bytes())
        except ImageError as exc:
            unreadable[path] = exc.detail
            continue
        faces = pipe.analyze_image(
            image, model_ids=[model_id], nearest_centre=nearest_centre, max_faces=1
        )
        if faces:
            vectors[i], found[i] = faces[0].embeddings[model_id], True
    return Embedded(vectors, found, unreadable)


@dataclass
class PairScores:
    genuine: Scores
    impostor: Scores
    # Impostor pairs where both photos had a face: the comparisons a service would make.
    impostor_compared: NDArray[np.bool_]


def pair_scores(embedded: Embedded, ps: PairSet) -> PairScores:
    embs, found = embedded.vectors, embedded.found
    sim = embs @ embs.T
    sim[~found, :] = -1.0
    sim[:, ~found] = -1.0
    if ps.pairs is not None:
        idx = np.array([(a, b) for a, b, _ in ps.pairs]).reshape(-1, 2)
        same = np.array([s for _, _, s in ps.pairs], dtype=bool)
    else:
        labels = np.array(ps.labels)
        idx = np.stack(np.triu_indices(len(labels), k=1), axis=1)
        same = labels[idx[:, 0]] == labels[idx[:, 1]]
    s = sim[idx[:, 0], idx[:, 1]]
    both = found[idx[:, 0]] & found[idx[:, 1]]
    return PairScores(s[same], s[~same], both[~same])


def roc_auc(genuine: Scores, impostor: Scores) -> float:
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


def threshold_at_fmr(impostor: Scores, fmr: float) -> float:
    """Smallest threshold whose false-match rate (score ≥ threshold) is ≤ ``fmr``."""
    s = np.sort(impostor)[::-1]
    k = int(np.floor(fmr * len(s)))  # at most k impostors may pass
    if k >= len(s):
        return float(s[-1])
    return float(np.nextafter(s[k], np.float32(np.inf)))


def rates(genuine: Scores, impostor: Scores, threshold: float) -> tuple[float, float]:
    """(FMR, FNMR) at ``threshold``."""
    return float((impostor >= threshold).mean()), float((genuine < threshold).mean())


def best_accuracy(genuine: Scores, impostor: Scores) -> tuple[float, float]:
    """Best balanced accuracy over thresholds, as LFW reports it (equal class weight)."""
    cands = np.unique(np.concatenate([genuine, impostor]))
    best = (0.0, 0.0)
    for t in cands[:: max(1, len(cands) // 4000)]:
        fmr, fnmr = rates(genuine, impostor, float(t))
        acc = 1 - (fmr + fnmr) / 2
        if acc > best[0]:
            best = (acc, float(t))
    return best


def impostors_needed(fmr: float) -> int:
    """Fewest impostor pairs that can show a false-match rate of ``fmr``: one false
    match among them is already that rate."""
    return math.ceil(1 / fmr - 1e-9)


class TooFewPairs(ValueError):
    """The labelled set cannot support a threshold at the requested false-match rate."""


@dataclass(frozen=True)
class OperatingPoint:
    fmr_target: float
    threshold: float
    fmr: float  # measured at the threshold, on the impostor pairs compared
    fnmr: float  # measured at the threshold, on every genuine pair (no face = miss)


def operating_point(scores: PairScores, fmr: float) -> OperatingPoint:
    """The threshold at ``fmr`` over the impostor pairs where both photos had a face (a
    photo without one never reaches the threshold in service, so counting its pairs
    would lower the threshold), and FNMR there over all genuine pairs."""
    if not 0 < fmr < 1:
        raise TooFewPairs(f"the false-match rate must be between 0 and 1, not {format_rate(fmr)}")
    impostor = scores.impostor[scores.impostor_compared]
    if len(scores.genuine) == 0:
        raise TooFewPairs("no genuine (same-person) pairs: FNMR cannot be measured")
    if len(impostor) < impostors_needed(fmr):
        raise TooFewPairs(
            f"{len(impostor):,} impostor pairs with a face in both photos; FMR"
            f" {format_rate(fmr)} needs at least {impostors_needed(fmr):,}"
            " (use a larger set or a higher --fmr)"
        )
    threshold = threshold_at_fmr(impostor, fmr)
    measured_fmr = float((impostor >= threshold).mean())
    fnmr = float((scores.genuine < threshold).mean())
    return OperatingPoint(fmr, threshold, measured_fmr, fnmr)


# -- calibration records ----------------------------------------------------------------


@dataclass(frozen=True)
class CalibrationRecord:
    """A threshold measured on labelled pairs for one model and one embedding mode,
    tied to the exact model file by its sha256."""

    model_id: str
    threshold: float
    fmr: float  # the false-match rate the threshold targets
    fnmr: float  # measured there
    dataset: str
    photos: int
    genuine_pairs: int
    impostor_pairs: int
    flip_average: bool
    created_at: str  # ISO 8601, UTC
    model_sha256: str
    detector: str
    no_face: int

    def describe(self) -> str:
        """The ``calibrated_on`` text of a spec that uses this record."""
        flip = ", mirror-averaged" if self.flip_average else ""
        return (
            f"{Path(self.dataset).name} ({self.photos:,} photos, {self.impostor_pairs:,}"
            f" impostor pairs) at FMR {format_rate(self.fmr)}{flip}, FNMR {self.fnmr:.1%};"
            f" calibrated {self.created_at[:10]}"
        )


def format_rate(rate: float) -> str:
    """1e-3 rather than 0.001, as the shipped specs and the README write rates."""
    mantissa, exponent = f"{rate:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}" if round(rate, 12) == float(f"{rate:.0e}") else f"{rate:g}"


def record_path(calibration_dir: Path, model_id: str, flip_average: bool) -> Path:
    """One record per model and embedding mode: mirror-averaged vectors score differently,
    so they have a threshold of their own."""
    return calibration_dir / (f"{model_id}.flip.json" if flip_average else f"{model_id}.json")


def write_record(calibration_dir: Path, record: CalibrationRecord) -> Path:
    calibration_dir.mkdir(parents=True, exist_ok=True)
    path = record_path(calibration_dir, record.model_id, record.flip_average)
    atomic_write(path, (json.dumps(asdict(record), indent=2) + "\n").encode())
    return path


class BadRecord(ValueError):
    pass


def read_record(path: Path) -> CalibrationRecord:
    """The record at ``path``; ``BadRecord`` (whose text names no path: the API shows
    it) when it is unreadable or malformed."""
    try:
        raw = json.loads(path.read_text())
        record = CalibrationRecord(**raw)
    except OSError as exc:
        raise BadRecord(f"the record cannot be read: {exc.strerror}") from exc
    except (ValueError, TypeError) as exc:
        raise BadRecord(f"the record is malformed: {exc}") from exc
    numbers_ok = all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        for v in (record.threshold, record.fmr, record.fnmr)
    )
    if not numbers_ok or not -1.0 <= record.threshold <= 1.0 or not 0 < record.fmr < 1:
        raise BadRecord("the record holds an impossible threshold or false-match rate")
    if not isinstance(record.model_sha256, str) or len(record.model_sha256) != 64:
        raise BadRecord("the record holds no model sha256")
    return record


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
