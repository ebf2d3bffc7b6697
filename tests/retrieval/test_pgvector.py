"""pgvector specifics: the per-model HNSW expression index is what answers 1:N, the
btree what answers 1:1, and filtered search stays correct on a small gallery."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine

from retrieval.backends.pgvector_index import PgVectorIndex, hnsw_index_name
from retrieval.base import IndexConfig
from retrieval.errors import InvalidModelId, UnknownModel
from retrieval.templates import ensure_model_index
from tests.retrieval.conftest import MODEL, make_gallery, register_model


@pytest.fixture
def pgv() -> PgVectorIndex:
    # exact_below=0: every gallery goes through HNSW, the path these tests look at.
    return PgVectorIndex(IndexConfig(m=8, ef_construction=32, ef_search=64, exact_below=0))


def _plan(conn, sql: str, params: tuple) -> str:  # noqa: ANN001
    rows = conn.exec_driver_sql("EXPLAIN " + sql, params).fetchall()
    return "\n".join(r[0] for r in rows)


def _explain_search(conn, pgv: PgVectorIndex, vec: str, gallery_id: uuid.UUID) -> str:  # noqa: ANN001
    query = pgv._search_query(MODEL, 32, "gallery").as_string(conn.connection.driver_connection)
    query = query.replace("%(v)s", "%(v)s::vector").replace("%(k)s", "10")
    return _plan(conn, query.replace("%(g)s", "%(g)s::uuid"), {"v": vec, "g": gallery_id})


def test_hnsw_index_is_created_per_model_with_settings(engine: Engine, pgv: PgVectorIndex):
    with engine.begin() as conn:
        register_model(conn, pgv)
        ensure_model_index(conn, pgv, MODEL, 32)  # idempotent
        definition = conn.exec_driver_sql(
            "SELECT indexdef FROM pg_indexes WHERE indexname = %s", (hnsw_index_name(MODEL),)
        ).scalar_one()
    assert "USING hnsw (((embedding)::vector(32)) vector_cosine_ops)" in definition
    assert "m='8'" in definition and "ef_construction='32'" in definition
    assert f"WHERE ((model_id)::text = '{MODEL}'::text)" in definition


def test_search_uses_the_hnsw_index_and_verify_the_btree(engine: Engine, pgv: PgVectorIndex):
    rng = np.random.default_rng(2)
    with engine.begin() as conn:
        register_model(conn, pgv)
        gallery = make_gallery(conn, pgv, rng, subjects=30, per_subject=3)
        conn.exec_driver_sql("ANALYZE templates")
    probe = gallery.templates[0].embedding
    with engine.begin() as conn:
        # At 90 rows the planner rightly prefers btree + sort; take those away to see
        # that the query matches the HNSW index's expression and predicate.
        for setting in ("enable_seqscan", "enable_sort", "enable_bitmapscan"):
            conn.exec_driver_sql(f"SET LOCAL {setting} = off")
        vec = "[" + ",".join(f"{x:.6f}" for x in probe) + "]"
        plan = _explain_search(conn, pgv, vec, gallery.id)
        assert hnsw_index_name(MODEL) in plan
        plan = _plan(
            conn,
            "SELECT max(1 - (embedding <=> %s::vector)) FROM templates"
            " WHERE subject_id = %s AND model_id = %s",
            (vec, gallery.templates[0].subject_id, MODEL),
        )
        assert "ix_templates_subject_model" in plan


def test_filtered_search_on_a_one_percent_gallery(engine: Engine, pgv: PgVectorIndex):
    """Small gallery inside a big model index: iterative scans keep returning k hits of
    the right gallery, and each probe finds its own identity first."""
    rng = np.random.default_rng(4)
    with engine.begin() as conn:
        register_model(conn, pgv)
        small = make_gallery(conn, pgv, rng, subjects=10, per_subject=2)
        for _ in range(3):
            make_gallery(conn, pgv, rng, subjects=220, per_subject=3)
        conn.exec_driver_sql("ANALYZE templates")
    total = 20 + 3 * 660
    assert 20 / total < 0.011
    with engine.connect() as conn:
        for setting in ("enable_seqscan", "enable_sort", "enable_bitmapscan"):
            conn.exec_driver_sql(f"SET {setting} = off")  # force the ANN path at this size
        vec = "[" + ",".join(f"{x:.6f}" for x in small.templates[0].embedding) + "]"
        assert hnsw_index_name(MODEL) in _explain_search(conn, pgv, vec, small.id)
        for row in small.templates:
            hits = pgv.search(conn, row.embedding, gallery_id=small.id, model_id=MODEL, k=10)
            assert len(hits) == 10
            assert hits[0].template_id == row.id
            assert {h.template_id for h in hits} <= {t.id for t in small.templates}


def test_typed_errors(engine: Engine, pgv: PgVectorIndex):
    with engine.begin() as conn:
        with pytest.raises(InvalidModelId):
            ensure_model_index(conn, pgv, "bad'; drop table templates; --", 8)
        with pytest.raises(UnknownModel):
            pgv.search(conn, np.ones(8, np.float32), gallery_id=uuid.uuid4(), model_id="nope", k=1)


def test_build_index_rejects_unknown_backend(tmp_path: Path):
    from retrieval.errors import UnknownBackend
    from retrieval.factory import build_index

    with pytest.raises(UnknownBackend):
        build_index(IndexConfig(backend="faiss"))


def test_warm_up_prewarms_each_model_index(engine: Engine, pgv: PgVectorIndex):
    from retrieval.warmup import warm_up

    with engine.begin() as conn:
        register_model(conn, pgv)
        make_gallery(conn, pgv, np.random.default_rng(5), subjects=5, per_subject=2)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP EXTENSION pg_prewarm")
    assert warm_up(engine, pgv) == {}  # without the extension: nothing, no error
    with engine.begin() as conn:  # migration 0002 installs it
        conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
    blocks = warm_up(engine, pgv)
    assert list(blocks) == [MODEL] and blocks[MODEL] > 0


def test_small_gallery_is_searched_exactly_through_the_btree(engine: Engine):
    index = PgVectorIndex(IndexConfig(exact_below=100))
    rng = np.random.default_rng(12)
    with engine.begin() as conn:
        register_model(conn, index)
        small = make_gallery(conn, index, rng, subjects=10, per_subject=3)
        big = make_gallery(conn, index, rng, subjects=40, per_subject=3)
        conn.exec_driver_sql("ANALYZE templates")
    probe = big.templates[0].embedding
    matrix = np.stack([t.embedding for t in small.templates])
    expected = [small.templates[i].id for i in np.argsort(-(matrix @ probe))[:5]]
    with engine.connect() as conn:
        assert index.gallery_size(conn, small.id, MODEL) == 30
        hits = index.search(conn, probe, gallery_id=small.id, model_id=MODEL, k=5)
        assert [h.template_id for h in hits] == expected
        query = index._search_query(MODEL, 32, "exact").as_string(conn.connection.driver_connection)
        vec = "[" + ",".join(f"{x:.6f}" for x in probe) + "]"
        query = query.replace("%(v)s", "%(v)s::vector").replace("%(k)s", "5")
        plan = _plan(conn, query.replace("%(g)s", "%(g)s::uuid"), {"v": vec, "g": small.id})
        assert hnsw_index_name(MODEL) not in plan
        # the big gallery (120 > 100) takes the HNSW path
        assert index.gallery_size(conn, big.id, MODEL) == 120
        hits = index.search(conn, probe, gallery_id=big.id, model_id=MODEL, k=1)
        assert hits[0].template_id == big.templates[0].id
