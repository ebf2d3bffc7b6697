"""Rebuild an index projection from Postgres, the system of record.

pgvector: the model's HNSW index is rebuilt with ``REINDEX INDEX CONCURRENTLY`` (or
created concurrently), reads and writes continuing meanwhile. The index covers a
model, not a gallery, so ``gallery_id`` rebuilds the index of the gallery's models.
External engines: the gallery's (or the model's) points are deleted and streamed again
from ``templates`` in batches; outbox rows written meanwhile are delivered after by the
relay, which projects the current state, so nothing written during a rebuild is lost.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from psycopg import sql
from sqlalchemy import Engine

from retrieval.backends.pgvector_index import PgVectorIndex, hnsw_index_name
from retrieval.base import ExternalStore, IndexPoint, VectorIndex
from retrieval.vectors import from_pg

# (model_id, done, total): called as work progresses; total may be 0 when unknown.
Progress = Callable[[str, int, int], None]

_BATCH = 2_000


@dataclass(frozen=True)
class RebuildResult:
    model_id: str
    vectors: int


def rebuild(
    engine: Engine,
    index: VectorIndex,
    *,
    gallery_id: uuid.UUID | None = None,
    model_id: str | None = None,
    progress: Progress | None = None,
) -> list[RebuildResult]:
    """Rebuild the projection of every model that has templates (or of ``model_id``),
    limited to ``gallery_id`` where the engine allows it."""
    report = progress or (lambda _m, _d, _t: None)
    with engine.connect() as conn:
        models = (
            index.pg.raw(conn)
            .execute(
                "SELECT m.id, m.dim, count(t.id) FROM models m LEFT JOIN templates t"
                " ON t.model_id = m.id AND (%s::uuid IS NULL OR t.gallery_id = %s::uuid)"
                " WHERE %s::text IS NULL OR m.id = %s GROUP BY m.id, m.dim ORDER BY m.id",
                (gallery_id, gallery_id, model_id, model_id),
            )
            .fetchall()
        )
    results = []
    for mid, dim, total in models:
        if total == 0 and model_id is None:
            continue
        if isinstance(index, PgVectorIndex):
            count = _rebuild_pgvector(engine, index, mid, dim, int(total), report)
        else:
            count = _rebuild_external(engine, index, mid, dim, gallery_id, int(total), report)
        results.append(RebuildResult(model_id=mid, vectors=count))
    return results


def _rebuild_external(
    engine: Engine,
    index: VectorIndex,
    model_id: str,
    dim: int,
    gallery_id: uuid.UUID | None,
    total: int,
    report: Progress,
) -> int:
    if not isinstance(index, ExternalStore):
        raise TypeError(f"{index.name} cannot be rebuilt as an external store")
    done = 0
    report(model_id, 0, total)
    with engine.connect() as conn:
        if gallery_id is None:
            index.drop_model(conn, model_id)
            index.ensure_model(conn, model_id, dim)
        else:
            index.ensure_model(conn, model_id, dim)
            index.delete_gallery(model_id, gallery_id)
        raw = index.pg.raw(conn)
        # A named (server-side) cursor streams the rows without holding them all.
        with raw.cursor(name="faceprint_rebuild") as cur:
            cur.itersize = _BATCH
            cur.execute(
                "SELECT id, subject_id, gallery_id, embedding FROM templates"
                " WHERE model_id = %s AND (%s::uuid IS NULL OR gallery_id = %s::uuid)",
                (model_id, gallery_id, gallery_id),
            )
            while rows := cur.fetchmany(_BATCH):
                index.upsert(
                    model_id,
                    [IndexPoint(r[0], r[1], r[2], from_pg(r[3])) for r in rows],
                )
                done += len(rows)
                report(model_id, done, total)
        conn.rollback()
    index.optimize(model_id)
    return done


def _rebuild_pgvector(
    engine: Engine, index: PgVectorIndex, model_id: str, dim: int, total: int, report: Progress
) -> int:
    name = hnsw_index_name(model_id)
    with engine.connect() as conn:
        raw = index.pg.raw(conn)
        exists = raw.execute(
            "SELECT 1 FROM pg_class WHERE relname = %s AND relkind = 'i'", (name,)
        ).fetchone()
        conn.rollback()
        # CONCURRENTLY cannot run inside a transaction block.
        raw.autocommit = True
        try:
            statement = (
                sql.SQL("REINDEX INDEX CONCURRENTLY {}").format(sql.Identifier(name))
                if exists
                else index.create_index_sql(model_id, dim, concurrently=True)
            )
            _run_with_progress(
                engine, index, lambda: raw.execute(statement), model_id, total, report
            )
        finally:
            raw.autocommit = False
    report(model_id, total, total)
    return total


def _run_with_progress(
    engine: Engine,
    index: PgVectorIndex,
    work: Callable[[], object],
    model_id: str,
    total: int,
    report: Progress,
) -> None:
    """Run ``work`` while a second connection reports pg_stat_progress_create_index."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=target, name="faceprint-reindex")
    thread.start()
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        raw.rollback()
        raw.autocommit = True
        try:
            while thread.is_alive():
                row = raw.execute(
                    "SELECT tuples_done, tuples_total FROM pg_stat_progress_create_index"
                    " WHERE relid = 'templates'::regclass"
                ).fetchone()
                if row is not None and row[1]:
                    report(model_id, min(int(row[0]), total), total)
                thread.join(0.5)
        finally:
            raw.autocommit = False
    if failure:
        raise failure[0]
