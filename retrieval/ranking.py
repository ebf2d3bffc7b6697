"""1:N over subjects: each subject ranked once, by its best template."""

from __future__ import annotations

import uuid

from sqlalchemy import Connection

from retrieval.base import SubjectHit, Vector, VectorIndex

# Templates fetched per wanted subject on the first try (enrolments have a few each).
_OVERFETCH = 5
_MAX_TEMPLATES = 4_096


def search_subjects(
    conn: Connection,
    index: VectorIndex,
    vector: Vector,
    *,
    gallery_id: uuid.UUID,
    model_id: str,
    k: int,
    threshold: float | None = None,
    ef_search: int | None = None,
) -> list[SubjectHit]:
    """The ``k`` best subjects of the gallery, best first, each with its best template;
    subjects whose best similarity is below ``threshold`` are dropped. Fetches more
    templates while too few distinct subjects clear the threshold and more could."""
    if k <= 0:
        return []
    limit = min(_MAX_TEMPLATES, max(k * _OVERFETCH, 10))
    while True:
        hits = index.search(
            conn, vector, gallery_id=gallery_id, model_id=model_id, k=limit, ef_search=ef_search
        )
        best: dict[uuid.UUID, SubjectHit] = {}
        for hit in hits:  # best first, so the first hit of a subject is its best
            if threshold is not None and hit.similarity < threshold:
                break
            if hit.subject_id not in best:
                best[hit.subject_id] = SubjectHit(hit.subject_id, hit.similarity, hit.template_id)
        below = threshold is not None and bool(hits) and hits[-1].similarity < threshold
        if len(best) >= k or len(hits) < limit or below or limit >= _MAX_TEMPLATES:
            return sorted(best.values(), key=lambda h: -h.similarity)[:k]
        limit = min(_MAX_TEMPLATES, limit * 4)
