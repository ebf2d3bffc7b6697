"""pgvector: the templates table is the index.

Per model, a partial expression HNSW index over ``embedding::vector(dim)`` with
``vector_cosine_ops``; queries repeat the same expression and predicate so the planner
uses it. A gallery is a filter inside the model's index, kept correct by pgvector 0.8's
iterative index scans (``hnsw.iterative_scan = relaxed_order``). 1:1 verify goes through
the (subject_id, model_id) btree. Writes are the template rows themselves, in the
caller's transaction.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid

from psycopg import sql
from sqlalchemy import Connection

from retrieval.base import Hit, IndexConfig, IndexHealth, Vector, check_model_id
from retrieval.pg import PgSupport
from retrieval.vectors import clamp, unit


def hnsw_index_name(model_id: str) -> str:
    """A stable, valid identifier (≤ 63 bytes) per model id."""
    slug = re.sub(r"[^a-z0-9]+", "_", model_id.lower())[:28]
    digest = hashlib.sha1(model_id.encode()).hexdigest()[:8]
    return f"ix_templates_hnsw_{slug}_{digest}"


def _embedding(dim: int) -> sql.Composable:
    return sql.SQL("(embedding::vector({}))").format(sql.Literal(dim))


class PgVectorIndex:
    name = "pgvector"
    external = False

    def __init__(self, config: IndexConfig) -> None:
        self.config = config
        self.pg = PgSupport()
        self._search_sql: dict[tuple[str, str], sql.Composed] = {}
        # (gallery, model) -> (templates, monotonic expiry): picks exact vs HNSW.
        self._gallery_sizes: dict[tuple[uuid.UUID, str], tuple[int, float]] = {}

    # -- index lifecycle -------------------------------------------------------------

    def create_index_sql(self, model_id: str, dim: int, *, concurrently: bool) -> sql.Composed:
        check_model_id(model_id)
        return sql.SQL(
            "CREATE INDEX {conc} IF NOT EXISTS {name} ON templates USING hnsw"
            " ({expr} vector_cosine_ops) WITH (m = {m}, ef_construction = {efc})"
            " WHERE model_id = {model}"
        ).format(
            conc=sql.SQL("CONCURRENTLY" if concurrently else ""),
            name=sql.Identifier(hnsw_index_name(model_id)),
            expr=_embedding(dim),
            m=sql.Literal(self.config.m),
            efc=sql.Literal(self.config.ef_construction),
            model=sql.Literal(model_id),
        )

    def ensure_model(self, conn: Connection, model_id: str, dim: int) -> None:
        raw = self.pg.raw(conn)
        exists = raw.execute(
            "SELECT 1 FROM pg_class WHERE relname = %s AND relkind = 'i'",
            (hnsw_index_name(check_model_id(model_id)),),
        ).fetchone()
        if not exists:
            # Inside the caller's transaction, so not CONCURRENTLY: a new model has no
            # rows yet. `faceprint index rebuild` builds big ones concurrently.
            raw.execute(self.create_index_sql(model_id, dim, concurrently=False))

    def drop_model(self, conn: Connection, model_id: str) -> None:
        self.pg.raw(conn).execute(
            sql.SQL("DROP INDEX IF EXISTS {}").format(
                sql.Identifier(hnsw_index_name(check_model_id(model_id)))
            )
        )
        self._search_sql = {key: q for key, q in self._search_sql.items() if key[0] != model_id}

    def prewarm(self, conn: Connection, model_id: str) -> int:
        """Load the model's HNSW index into shared buffers (pg_prewarm, when installed);
        returns the number of blocks read, 0 without the extension."""
        raw = self.pg.raw(conn)
        if not raw.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_prewarm'").fetchone():
            return 0
        row = raw.execute(
            "SELECT pg_prewarm(c.oid) FROM pg_class c WHERE c.relname = %s",
            (hnsw_index_name(check_model_id(model_id)),),
        ).fetchone()
        return int(row[0]) if row else 0

    # -- queries ---------------------------------------------------------------------

    def _search_query(self, model_id: str, dim: int, mode: str) -> sql.Composed:
        """``mode``: "all" (whole model, HNSW), "gallery" (HNSW with iterative scan) or
        "exact" (the gallery's rows through the btree, every distance computed)."""
        key = (model_id, mode)
        query = self._search_sql.get(key)
        if query is None:
            # The exact query orders by the untyped column, which the HNSW expression
            # index cannot serve, so the planner reads the gallery through its btree.
            expr = _embedding(dim) if mode != "exact" else sql.SQL("embedding")
            query = sql.SQL(
                "SELECT id, subject_id, {expr} <=> %(v)s FROM templates"
                " WHERE model_id = {model} {gallery}"
                " ORDER BY {expr} <=> %(v)s LIMIT %(k)s"
            ).format(
                expr=expr,
                model=sql.Literal(check_model_id(model_id)),
                gallery=sql.SQL("AND gallery_id = %(g)s" if mode != "all" else ""),
            )
            self._search_sql[key] = query
        return query

    def gallery_size(self, conn: Connection, gallery_id: uuid.UUID, model_id: str) -> int:
        """Templates of the model in the gallery, cached for a minute (an index-only
        count on the btree; only used to choose the query plan)."""
        key = (gallery_id, model_id)
        cached = self._gallery_sizes.get(key)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        row = (
            self.pg.raw(conn)
            .execute(
                "SELECT count(*) FROM templates WHERE gallery_id = %s AND model_id = %s",
                (gallery_id, model_id),
                prepare=True,
            )
            .fetchone()
        )
        size = int(row[0]) if row else 0
        self._gallery_sizes[key] = (size, now + 60.0)
        return size

    def search(
        self,
        conn: Connection,
        vector: Vector,
        *,
        gallery_id: uuid.UUID | None,
        model_id: str,
        k: int,
        ef_search: int | None = None,
    ) -> list[Hit]:
        dim = self.pg.dim(conn, model_id)
        probe = unit(vector, dim=dim, model_id=model_id)
        raw = self.pg.raw(conn)
        if gallery_id is None:
            mode = "all"
        elif self.gallery_size(conn, gallery_id, model_id) <= self.config.exact_below:
            mode = "exact"
        else:
            mode = "gallery"
        params = {"v": probe, "k": k, "g": gallery_id}
        query = self._search_query(model_id, dim, mode)
        if mode == "exact":
            rows = raw.execute(query, params, prepare=True).fetchall()
        else:
            # The settings and the query travel in one round trip (pipeline mode); SET
            # LOCAL keeps them to this transaction, whatever a pooled connection did before.
            with raw.pipeline():
                raw.execute(
                    "SELECT set_config('hnsw.ef_search', %s, true),"
                    " set_config('hnsw.iterative_scan', %s, true),"
                    " set_config('hnsw.max_scan_tuples', %s, true)",
                    (
                        str(ef_search or self.config.ef_search),
                        "relaxed_order" if mode == "gallery" else "off",
                        str(self.config.max_scan_tuples),
                    ),
                    prepare=True,
                )
                cursor = raw.execute(query, params, prepare=True)
            # relaxed_order may return rows slightly out of order: sort the k rows.
            rows = sorted(cursor.fetchall(), key=lambda r: r[2])
        return [Hit(template_id=r[0], subject_id=r[1], similarity=clamp(1.0 - r[2])) for r in rows]

    def verify(
        self, conn: Connection, vector: Vector, *, subject_id: uuid.UUID, model_id: str
    ) -> float | None:
        dim = self.pg.dim(conn, model_id)
        probe = unit(vector, dim=dim, model_id=model_id)
        return self.pg.verify(conn, probe, subject_id=subject_id, model_id=model_id)

    def count(self, conn: Connection, *, model_id: str, gallery_id: uuid.UUID | None = None) -> int:
        row = (
            self.pg.raw(conn)
            .execute(
                "SELECT count(*) FROM templates WHERE model_id = %s"
                " AND (%s::uuid IS NULL OR gallery_id = %s::uuid) AND embedding IS NOT NULL",
                (model_id, gallery_id, gallery_id),
                prepare=True,
            )
            .fetchone()
        )
        return int(row[0]) if row else 0

    def health(self, conn: Connection) -> IndexHealth:
        row = (
            self.pg.raw(conn)
            .execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            .fetchone()
        )
        if row is None:
            return IndexHealth(ok=False, backend=self.name, detail="extension vector missing")
        return IndexHealth(ok=True, backend=self.name, detail=f"pgvector {row[0]}")

    def close(self) -> None:
        """Nothing to release: the caller owns the connections."""
