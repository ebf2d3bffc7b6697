"""One conformance suite, run identically on every backend: pgvector, Qdrant Edge,
Milvus (milvus-lite) and qdrant-client's local mode."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from sqlalchemy import Engine

from retrieval.base import VectorIndex
from retrieval.errors import DimensionMismatch, InvalidVector
from retrieval.ranking import search_subjects
from retrieval.rebuild import rebuild
from retrieval.templates import delete_templates, enqueue_deletes
from tests.retrieval.conftest import MODEL, make_gallery, random_units, register_model, sync


@pytest.fixture
def two_galleries(engine: Engine, index: VectorIndex):  # noqa: ANN201
    rng = np.random.default_rng(7)
    with engine.begin() as conn:
        register_model(conn, index)
        a = make_gallery(conn, index, rng, subjects=12, per_subject=3)
        b = make_gallery(conn, index, rng, subjects=12, per_subject=3)
    sync(engine, index)
    return a, b


def test_own_vector_is_top_hit_with_cosine_one(engine: Engine, index: VectorIndex, two_galleries):
    a, _ = two_galleries
    with engine.connect() as conn:
        for row in a.templates[::5]:
            hits = index.search(conn, row.embedding, gallery_id=a.id, model_id=MODEL, k=3)
            assert hits[0].template_id == row.id
            assert hits[0].subject_id == row.subject_id
            assert hits[0].similarity == pytest.approx(1.0, abs=1e-4)
            assert [h.similarity for h in hits] == sorted(
                (h.similarity for h in hits), reverse=True
            )


def test_similarities_are_cosine_like_numpy(engine: Engine, index: VectorIndex, two_galleries):
    a, _ = two_galleries
    probe = random_units(np.random.default_rng(1), 1)[0]
    matrix = np.stack([t.embedding for t in a.templates])
    exact = matrix @ probe
    order = np.argsort(-exact)[:10]
    with engine.connect() as conn:
        hits = index.search(conn, probe, gallery_id=a.id, model_id=MODEL, k=10)
    assert [h.template_id for h in hits] == [a.templates[i].id for i in order]
    np.testing.assert_allclose([h.similarity for h in hits], exact[order], atol=1e-4)
    assert all(-1.0 <= h.similarity <= 1.0 for h in hits)


def test_gallery_isolation_even_at_k_1000(engine: Engine, index: VectorIndex, two_galleries):
    a, b = two_galleries
    a_ids = {t.id for t in a.templates}
    with engine.connect() as conn:
        for row in b.templates[:3]:
            hits = index.search(conn, row.embedding, gallery_id=a.id, model_id=MODEL, k=1000)
            assert {h.template_id for h in hits} == a_ids
        assert index.count(conn, model_id=MODEL, gallery_id=a.id) == len(a_ids)
        assert index.count(conn, model_id=MODEL) == len(a_ids) + len(b.templates)


def test_verify_is_the_best_template_of_that_subject(
    engine: Engine, index: VectorIndex, two_galleries
):
    a, b = two_galleries
    subject_id, rows = next(iter(a.subjects.items()))
    probe = random_units(np.random.default_rng(3), 1)[0]
    expected = max(float(r.embedding @ probe) for r in rows)
    with engine.connect() as conn:
        got = index.verify(conn, probe, subject_id=subject_id, model_id=MODEL)
        assert got == pytest.approx(expected, abs=1e-4)
        assert index.verify(conn, probe, subject_id=uuid.uuid4(), model_id=MODEL) is None
        with pytest.raises(DimensionMismatch):
            index.verify(conn, probe[:10], subject_id=subject_id, model_id=MODEL)
        with pytest.raises(InvalidVector):
            index.search(conn, probe * np.nan, gallery_id=a.id, model_id=MODEL, k=1)


def test_deletes_are_visible_to_the_next_query(engine: Engine, index: VectorIndex, two_galleries):
    a, _ = two_galleries
    victim = a.templates[4]
    with engine.begin() as conn:
        assert delete_templates(conn, index, [victim.id]) == 1
    with engine.connect() as conn:
        # Before the relay runs: Postgres already filters it out.
        hits = index.search(conn, victim.embedding, gallery_id=a.id, model_id=MODEL, k=5)
        assert victim.id not in {h.template_id for h in hits}
        assert len(hits) == 5
    sync(engine, index)
    with engine.connect() as conn:
        assert index.count(conn, model_id=MODEL, gallery_id=a.id) == len(a.templates) - 1


def test_deleted_subject_never_returned(engine: Engine, index: VectorIndex, two_galleries):
    a, _ = two_galleries
    subject_id, rows = next(iter(a.subjects.items()))
    with engine.begin() as conn:
        enqueue_deletes(conn, index, subject_id=subject_id)
        conn.exec_driver_sql("DELETE FROM subjects WHERE id = %s", (subject_id,))
    with engine.connect() as conn:
        for row in rows:
            ranked = search_subjects(
                conn, index, row.embedding, gallery_id=a.id, model_id=MODEL, k=50
            )
            assert subject_id not in {s.subject_id for s in ranked}
            assert len(ranked) == len(a.subjects) - 1
        assert index.verify(conn, rows[0].embedding, subject_id=subject_id, model_id=MODEL) is None
    sync(engine, index)
    with engine.connect() as conn:
        assert index.count(conn, model_id=MODEL, gallery_id=a.id) == len(a.templates) - len(rows)


def test_search_subjects_ranks_each_subject_once(engine: Engine, index: VectorIndex, two_galleries):
    a, _ = two_galleries
    subject_id, rows = next(iter(a.subjects.items()))
    with engine.connect() as conn:
        ranked = search_subjects(
            conn, index, rows[0].embedding, gallery_id=a.id, model_id=MODEL, k=5
        )
        assert ranked[0].subject_id == subject_id
        assert ranked[0].template_id == rows[0].id
        assert len({s.subject_id for s in ranked}) == len(ranked) == 5
        strict = search_subjects(
            conn, index, rows[0].embedding, gallery_id=a.id, model_id=MODEL, k=5, threshold=0.99
        )
        assert [s.subject_id for s in strict] == [subject_id]


def test_rebuild_from_postgres_gives_the_same_answers(
    engine: Engine, index: VectorIndex, two_galleries
):
    a, b = two_galleries
    probes = random_units(np.random.default_rng(11), 5)

    def answers() -> list[list[tuple[uuid.UUID, float]]]:
        with engine.connect() as conn:
            return [
                [(h.template_id, round(h.similarity, 4))
                 for h in index.search(conn, p, gallery_id=g, model_id=MODEL, k=8)]
                for p in probes
                for g in (a.id, b.id)
            ]  # fmt: skip

    before = answers()
    done = []
    results = rebuild(engine, index, progress=lambda m, d, t: done.append((m, d, t)))
    assert [(r.model_id, r.vectors) for r in results] == [
        (MODEL, len(a.templates) + len(b.templates))
    ]
    assert done[-1] == (MODEL, 72, 72)
    assert answers() == before
    results = rebuild(engine, index, gallery_id=b.id)
    assert answers() == before
    with engine.connect() as conn:
        assert index.count(conn, model_id=MODEL) == 72


def test_health(engine: Engine, index: VectorIndex, two_galleries):
    with engine.connect() as conn:
        health = index.health(conn)
    assert health.ok, health.detail
    assert health.backend == index.name
