"""What the external engines (Qdrant, Qdrant Edge, Milvus) share: reads are checked
against Postgres, verify goes through Postgres' btree, and names are derived one way."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Protocol

from sqlalchemy import Connection

from retrieval.base import Hit, IndexConfig, Vector, check_model_id
from retrieval.pg import PgSupport
from retrieval.vectors import unit

# (probe, gallery, limit, ef_search) -> [(template id, cosine)], best first
Fetch = Callable[[Vector, uuid.UUID | None, int, int], list[tuple[uuid.UUID, float]]]

# Past this many raw candidates a search stops widening; Milvus caps a search at 16384.
MAX_FETCH = 16_384


def collection_name(model_id: str) -> str:
    """Qdrant and Milvus collection names: letters, digits and underscores."""
    return "faceprint_" + re.sub(r"[^A-Za-z0-9]", "_", check_model_id(model_id))


def checked_search(
    conn: Connection,
    pg: PgSupport,
    fetch: Fetch,
    vector: Vector,
    *,
    gallery_id: uuid.UUID | None,
    model_id: str,
    k: int,
    ef_search: int,
) -> list[Hit]:
    """Search the engine, then keep only templates Postgres still holds. When the engine
    returned stale entries (deleted in Postgres, relay not yet run) ask for more, so a
    deletion never shrinks the answer below ``k`` while live candidates remain."""
    probe = unit(vector, dim=pg.dim(conn, model_id), model_id=model_id)
    limit = k
    while True:
        raw = fetch(probe, gallery_id, limit, max(ef_search, limit))
        hits = pg.keep_live(conn, raw, gallery_id=gallery_id, model_id=model_id)
        exhausted = len(raw) < limit or limit >= MAX_FETCH
        if len(hits) >= k or exhausted:
            return hits[:k]
        limit = min(MAX_FETCH, limit * 2 + (k - len(hits)))


def postgres_verify(
    conn: Connection, pg: PgSupport, vector: Vector, *, subject_id: uuid.UUID, model_id: str
) -> float | None:
    """1:1 verify reads the subject's few templates from Postgres (the truth) through the
    btree: exact, and never stale, whatever engine serves 1:N."""
    probe = unit(vector, dim=pg.dim(conn, model_id), model_id=model_id)
    return pg.verify(conn, probe, subject_id=subject_id, model_id=model_id)


class _Engine(Protocol):
    pg: PgSupport
    config: IndexConfig

    def fetch(
        self, model_id: str, probe: Vector, gallery_id: uuid.UUID | None, limit: int, ef: int
    ) -> list[tuple[uuid.UUID, float]]: ...


class PostgresCheckedReads:
    """``search`` and ``verify`` of every engine outside Postgres: the engine's own
    nearest-neighbour ``fetch``, checked against Postgres, and 1:1 from Postgres."""

    def search(
        self: _Engine,
        conn: Connection,
        vector: Vector,
        *,
        gallery_id: uuid.UUID | None,
        model_id: str,
        k: int,
        ef_search: int | None = None,
    ) -> list[Hit]:
        return checked_search(
            conn,
            self.pg,
            lambda probe, gallery, limit, ef: self.fetch(model_id, probe, gallery, limit, ef),
            vector,
            gallery_id=gallery_id,
            model_id=model_id,
            k=k,
            ef_search=ef_search or self.config.ef_search,
        )

    def verify(
        self: _Engine, conn: Connection, vector: Vector, *, subject_id: uuid.UUID, model_id: str
    ) -> float | None:
        return postgres_verify(conn, self.pg, vector, subject_id=subject_id, model_id=model_id)
