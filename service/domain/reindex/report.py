"""What a reindex reports before anyone switches models: coverage (templates under the
old and the new model, faces that failed and why) and a shadow comparison (how the two
models decide the gallery's own same-subject and different-subject pairs)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Connection, text

from retrieval.pg import PgSupport


@dataclass(frozen=True)
class Coverage:
    faces: int
    old_model: str
    new_model: str
    old_templates: int
    new_templates: int
    failed: dict[str, str]

    @property
    def complete(self) -> bool:
        return self.new_templates >= self.faces


@dataclass(frozen=True)
class PairStats:
    pairs: int
    old_match_rate: float
    new_match_rate: float
    agreement: float
    # Pairs the old model accepted and the new one rejects, and the reverse.
    lost_matches: int
    new_matches: int


@dataclass(frozen=True)
class ShadowReport:
    old_model: str
    new_model: str
    old_threshold: float
    new_threshold: float
    faces_compared: int
    same_subject: PairStats
    different_subject: PairStats

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def coverage(conn: Connection, gallery_id: uuid.UUID, old_model: str, new_model: str) -> Coverage:
    row = conn.execute(
        text(
            "SELECT (SELECT count(*) FROM faces WHERE gallery_id = :g AND status = 'ready') AS f,"
            " (SELECT count(*) FROM templates WHERE gallery_id = :g AND model_id = :old) AS o,"
            " (SELECT count(*) FROM templates WHERE gallery_id = :g AND model_id = :new) AS n"
        ),
        {"g": gallery_id, "old": old_model, "new": new_model},
    ).one()
    failed = conn.execute(
        text(
            "SELECT result->'failed' FROM jobs WHERE kind = 'reindex' AND gallery_id = :g"
            " AND payload->>'to_model' = :new ORDER BY created_at DESC LIMIT 1"
        ),
        {"g": gallery_id, "new": new_model},
    ).scalar()
    return Coverage(int(row.f), old_model, new_model, int(row.o), int(row.n), dict(failed or {}))


def _paired_embeddings(
    conn: Connection, gallery_id: uuid.UUID, old_model: str, new_model: str
) -> tuple[NDArray[np.int64], NDArray[np.float32], NDArray[np.float32]]:
    raw = PgSupport().raw(conn)
    rows = raw.execute(
        "SELECT o.subject_id, o.embedding, n.embedding FROM templates o"
        " JOIN templates n ON n.face_id = o.face_id AND n.model_id = %s"
        " WHERE o.gallery_id = %s AND o.model_id = %s ORDER BY o.face_id",
        (new_model, gallery_id, old_model),
    ).fetchall()
    if not rows:
        empty = np.zeros((0, 1), dtype=np.float32)
        return np.zeros(0, dtype=np.int64), empty, empty
    subject_codes: dict[uuid.UUID, int] = {}
    subjects = np.array([subject_codes.setdefault(r[0], len(subject_codes)) for r in rows])
    old = np.stack([_array(r[1]) for r in rows])
    new = np.stack([_array(r[2]) for r in rows])
    return subjects, old, new


def _array(value: Any) -> NDArray[np.float32]:
    # The untyped `vector` column comes back as pgvector's Vector, not an ndarray.
    raw = value.to_numpy() if hasattr(value, "to_numpy") else value
    return np.asarray(raw, dtype=np.float32)


def _same_pairs(
    subjects: NDArray[np.int64], rng: np.random.Generator, limit: int
) -> NDArray[np.int64]:
    pairs: list[tuple[int, int]] = []
    for code in np.unique(subjects):
        members = np.flatnonzero(subjects == code)
        for a in range(len(members)):
            for b in range(a + 1, len(members)):
                pairs.append((int(members[a]), int(members[b])))
    out = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    if len(out) > limit:
        out = out[rng.choice(len(out), size=limit, replace=False)]
    return out


def _different_pairs(
    subjects: NDArray[np.int64], rng: np.random.Generator, limit: int
) -> NDArray[np.int64]:
    n = len(subjects)
    if n < 2 or len(np.unique(subjects)) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    total = n * (n - 1) // 2
    if total <= limit:
        a, b = np.triu_indices(n, k=1)
        pairs = np.stack([a, b], axis=1)
    else:
        # Sample with a margin, drop self-pairs and same-subject pairs.
        a = rng.integers(0, n, size=limit * 2)
        b = rng.integers(0, n, size=limit * 2)
        pairs = np.stack([a, b], axis=1)[a != b]
    pairs = pairs[subjects[pairs[:, 0]] != subjects[pairs[:, 1]]]
    return pairs[:limit].astype(np.int64)


def _stats(
    pairs: NDArray[np.int64],
    old: NDArray[np.float32],
    new: NDArray[np.float32],
    old_threshold: float,
    new_threshold: float,
) -> PairStats:
    if len(pairs) == 0:
        return PairStats(0, 0.0, 0.0, 1.0, 0, 0)
    old_sim = np.einsum("ij,ij->i", old[pairs[:, 0]], old[pairs[:, 1]])
    new_sim = np.einsum("ij,ij->i", new[pairs[:, 0]], new[pairs[:, 1]])
    old_match = old_sim >= old_threshold
    new_match = new_sim >= new_threshold
    return PairStats(
        pairs=len(pairs),
        old_match_rate=round(float(old_match.mean()), 4),
        new_match_rate=round(float(new_match.mean()), 4),
        agreement=round(float((old_match == new_match).mean()), 4),
        lost_matches=int((old_match & ~new_match).sum()),
        new_matches=int((~old_match & new_match).sum()),
    )


def shadow_compare(
    conn: Connection,
    gallery_id: uuid.UUID,
    old_model: str,
    new_model: str,
    *,
    threshold: Callable[[str], float],
    max_pairs: int = 50_000,
    seed: int = 0,
) -> ShadowReport:
    """Decide the gallery's own pairs with both models at their thresholds (``threshold``
    is the model registry's, the one that verify and search use). Same-subject pairs
    estimate each model's true-match rate, different-subject pairs its false-match rate;
    ``agreement`` says how often the two models decide alike."""
    subjects, old, new = _paired_embeddings(conn, gallery_id, old_model, new_model)
    rng = np.random.default_rng(seed)
    old_t, new_t = threshold(old_model), threshold(new_model)
    return ShadowReport(
        old_model=old_model,
        new_model=new_model,
        old_threshold=old_t,
        new_threshold=new_t,
        faces_compared=len(subjects),
        same_subject=_stats(_same_pairs(subjects, rng, max_pairs), old, new, old_t, new_t),
        different_subject=_stats(
            _different_pairs(subjects, rng, max_pairs), old, new, old_t, new_t
        ),
    )
