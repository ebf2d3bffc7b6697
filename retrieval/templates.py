"""Writing templates: the Postgres row and its index projection in the caller's
transaction. With pgvector the row is the index entry; with an external engine an
``index_outbox`` row is written beside it and :func:`retrieval.outbox.drain` delivers it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from psycopg import sql
from sqlalchemy import Connection

from retrieval.base import TemplateRow, VectorIndex, check_model_id
from retrieval.pg import PgSupport
from retrieval.vectors import unit

_COPY_TEMPLATES = (
    "COPY templates (id, face_id, subject_id, gallery_id, model_id, embedding)"
    " FROM STDIN WITH (FORMAT BINARY)"
)


def ensure_model_index(conn: Connection, index: VectorIndex, model_id: str, dim: int) -> None:
    """Make sure the model's index exists (idempotent); call after registering the model."""
    index.ensure_model(conn, check_model_id(model_id), dim)


def add_templates(conn: Connection, index: VectorIndex, rows: Sequence[TemplateRow]) -> int:
    """Insert template rows with binary COPY, each vector checked against its model's
    dimension and L2-normalised, plus one outbox row each for external engines. Nothing
    is committed here: the caller's transaction decides."""
    if not rows:
        return 0
    pg = _support(index)
    raw = pg.raw(conn)
    prepared = [
        (r.id, r.face_id, r.subject_id, r.gallery_id, r.model_id,
         unit(r.embedding, dim=pg.dim(conn, r.model_id), model_id=r.model_id))
        for r in rows
    ]  # fmt: skip
    with raw.cursor() as cur, cur.copy(_COPY_TEMPLATES) as copy:
        copy.set_types(["uuid", "uuid", "uuid", "uuid", "varchar", "vector"])
        for record in prepared:
            copy.write_row(record)
    if index.external:
        _enqueue(conn, pg, sql.SQL("id = ANY(%s)"), [r.id for r in rows], op="upsert")
    return len(rows)


def delete_templates(
    conn: Connection, index: VectorIndex, template_ids: Sequence[uuid.UUID]
) -> int:
    """Delete template rows by id (and queue their removal from an external engine)."""
    if not template_ids:
        return 0
    pg = _support(index)
    ids = list(template_ids)
    if index.external:
        _enqueue(conn, pg, sql.SQL("id = ANY(%s)"), ids, op="delete")
    cursor = pg.raw(conn).execute("DELETE FROM templates WHERE id = ANY(%s)", (ids,))
    return cursor.rowcount


def enqueue_deletes(
    conn: Connection,
    index: VectorIndex,
    *,
    face_id: uuid.UUID | None = None,
    subject_id: uuid.UUID | None = None,
    gallery_id: uuid.UUID | None = None,
) -> int:
    """Queue index deletions for every template of a face, a subject or a gallery. Call
    it in the same transaction, *before* deleting the face/subject/gallery: the cascade
    removes the rows this reads. A no-op for pgvector (the cascade is the deletion)."""
    given = [(c, v) for c, v in (("face_id", face_id), ("subject_id", subject_id),
                                 ("gallery_id", gallery_id)) if v is not None]  # fmt: skip
    if len(given) != 1:
        raise ValueError("pass exactly one of face_id, subject_id, gallery_id")
    if not index.external:
        return 0
    column, value = given[0]
    where = sql.SQL("{} = %s").format(sql.Identifier(column))
    return _enqueue(conn, _support(index), where, value, op="delete")


def _enqueue(
    conn: Connection, pg: PgSupport, where: sql.Composable, param: object, *, op: str
) -> int:
    query = sql.SQL(
        "INSERT INTO index_outbox (op, template_id, gallery_id, subject_id, model_id)"
        " SELECT %s, id, gallery_id, subject_id, model_id FROM templates WHERE {}"
    ).format(where)
    return pg.raw(conn).execute(query, (op, param)).rowcount


def _support(index: VectorIndex) -> PgSupport:
    # Each backend owns a PgSupport: its per-connection and per-model caches.
    return index.pg
