"""The transactional outbox: a crash between Postgres and the external engine loses and
duplicates nothing; concurrent relays share the work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine

from retrieval.base import ExternalStore, VectorIndex
from retrieval.factory import build_index
from retrieval.outbox import _deliver_batch, drain, pending
from tests.retrieval.conftest import MODEL, backend_config, make_gallery, register_model


@pytest.fixture(params=["qdrant-edge", "milvus"])
def external(request: pytest.FixtureRequest, tmp_path: Path):  # noqa: ANN201
    built = build_index(backend_config(request.param, tmp_path))
    yield built
    built.close()


class Crash(Exception):
    pass


def _count(engine: Engine, index: VectorIndex, **kw: object) -> int:
    with engine.connect() as conn:
        return index.count(conn, model_id=MODEL, **kw)


def test_committed_write_waits_in_outbox_and_is_delivered_once(engine: Engine, external):
    rng = np.random.default_rng(5)
    with engine.begin() as conn:
        register_model(conn, external)
        gallery = make_gallery(conn, external, rng, subjects=10, per_subject=2)
    # "Crash" here: the template rows are committed, the relay has not run.
    assert _count(engine, external) == 0
    with engine.connect() as conn:
        assert pending(conn, external) == 20
    assert drain(engine.begin, external) == 20
    assert _count(engine, external, gallery_id=gallery.id) == 20
    # A second relay run finds nothing to do and duplicates nothing.
    assert drain(engine.begin, external) == 0
    assert _count(engine, external) == 20


def test_crash_after_engine_write_before_mark_redelivers_without_duplicates(
    engine: Engine, external
):
    rng = np.random.default_rng(6)
    with engine.begin() as conn:
        register_model(conn, external)
        make_gallery(conn, external, rng, subjects=6, per_subject=2)
    assert isinstance(external, ExternalStore)
    # The engine receives the batch, then the process dies before processed_at commits.
    with pytest.raises(Crash), engine.begin() as conn:
        assert _deliver_batch(conn, external, external, batch=100) == 12
        raise Crash
    assert _count(engine, external) == 12
    with engine.connect() as conn:
        assert pending(conn, external) == 12
    # Restarted relay delivers the same rows again: upserts by id, still 12 points.
    assert drain(engine.begin, external) == 12
    assert _count(engine, external) == 12
    with engine.connect() as conn:
        assert pending(conn, external) == 0


def test_outbox_projects_current_state_whatever_the_order(engine: Engine, external):
    rng = np.random.default_rng(8)
    with engine.begin() as conn:
        register_model(conn, external)
        gallery = make_gallery(conn, external, rng, subjects=4, per_subject=2)
        # Deleted in the same transaction that added it: the upsert row must not
        # resurrect it.
        victim = gallery.templates[0]
        conn.exec_driver_sql(
            "INSERT INTO index_outbox (op, template_id, gallery_id, subject_id, model_id)"
            " VALUES ('delete', %s, %s, %s, %s)",
            (victim.id, victim.gallery_id, victim.subject_id, MODEL),
        )
        conn.exec_driver_sql("DELETE FROM templates WHERE id = %s", (victim.id,))
    assert drain(engine.begin, external, batch=3) == 9
    assert _count(engine, external) == 7
    with engine.connect() as conn:
        hits = external.search(conn, victim.embedding, gallery_id=gallery.id, model_id=MODEL, k=10)
    assert victim.id not in {h.template_id for h in hits}


def test_pgvector_needs_no_outbox(engine: Engine, tmp_path: Path):
    index = build_index(backend_config("pgvector", tmp_path))
    with engine.begin() as conn:
        register_model(conn, index)
        make_gallery(conn, index, np.random.default_rng(9), subjects=3, per_subject=2)
    with engine.connect() as conn:
        assert pending(conn, index) == 0
        assert index.count(conn, model_id=MODEL) == 6
    assert drain(engine.begin, index) == 0


def test_background_relay_delivers_and_stops(engine: Engine, external):
    import threading

    from retrieval.outbox import run_relay

    with engine.begin() as conn:
        register_model(conn, external)
        make_gallery(conn, external, np.random.default_rng(10), subjects=5, per_subject=2)
    stop = threading.Event()
    thread = threading.Thread(target=run_relay, args=(engine.begin, external, stop),
                              kwargs={"interval_s": 0.05})  # fmt: skip
    thread.start()
    try:
        for _ in range(200):
            with engine.connect() as conn:
                if pending(conn, external) == 0:
                    break
            stop.wait(0.05)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert _count(engine, external) == 10


def test_relay_creates_the_collection_of_a_model_it_has_not_seen(engine: Engine, external):
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO models (id, dim, metric, threshold, version)"
            " VALUES (%s, 32, 'cosine', 0.5, '1')",
            (MODEL,),
        )
        make_gallery(conn, external, np.random.default_rng(13), subjects=3, per_subject=2)
    assert drain(engine.begin, external) == 6
    assert _count(engine, external) == 6
