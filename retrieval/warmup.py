"""Start-up warm-up: load each model's HNSW index into shared buffers, so the first
queries after a restart do not pay for disk reads (pgvector only)."""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from retrieval.backends.pgvector_index import PgVectorIndex
from retrieval.base import VectorIndex

log = logging.getLogger(__name__)


def warm_up(engine: Engine, index: VectorIndex) -> dict[str, int]:
    """Prewarm every model's index with ``pg_prewarm``; returns blocks read per model.
    Without the extension (``CREATE EXTENSION pg_prewarm``, which needs a superuser) it
    reads nothing and says so once in the log."""
    if not isinstance(index, PgVectorIndex):
        return {}
    with engine.connect() as conn:
        raw = index.pg.raw(conn)
        if not raw.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_prewarm'").fetchone():
            log.info("pg_prewarm is not installed: the HNSW indexes warm up with use")
            return {}
        models = [row[0] for row in raw.execute("SELECT id FROM models ORDER BY id")]
        return {model_id: index.prewarm(conn, model_id) for model_id in models}
