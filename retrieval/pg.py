"""Plain SQL against the templates table, shared by every backend: the driver connection
under a caller's SQLAlchemy ``Connection``, model dimensions, 1:1 verify through the
btree, and the Postgres check that keeps deleted templates out of external results."""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Sequence

import psycopg
from pgvector.psycopg import register_vector
from sqlalchemy import Connection

from retrieval.errors import UnknownModel
from retrieval.types import Hit, Vector
from retrieval.vectors import clamp


class PgSupport:
    """Per-process helpers with two small caches: which driver connections know the
    ``vector`` type, and each model's dimension (immutable once registered)."""

    def __init__(self) -> None:
        self._registered: weakref.WeakSet[psycopg.Connection] = weakref.WeakSet()
        self._dims: dict[str, int] = {}

    def raw(self, conn: Connection) -> psycopg.Connection:
        """The psycopg connection under ``conn``, inside ``conn``'s transaction."""
        if not conn.in_transaction():
            conn.begin()
        driver = conn.connection.driver_connection
        assert isinstance(driver, psycopg.Connection)
        if driver not in self._registered:
            register_vector(driver)
            self._registered.add(driver)
        return driver

    def dim(self, conn: Connection, model_id: str) -> int:
        cached = self._dims.get(model_id)
        if cached is not None:
            return cached
        row = (
            self.raw(conn)
            .execute("SELECT dim FROM models WHERE id = %s", (model_id,), prepare=True)
            .fetchone()
        )
        if row is None:
            raise UnknownModel(model_id)
        self._dims[model_id] = int(row[0])
        return self._dims[model_id]

    def verify(
        self, conn: Connection, vector: Vector, *, subject_id: uuid.UUID, model_id: str
    ) -> float | None:
        # ix_templates_subject_model finds the few rows; no ANN involved.
        row = (
            self.raw(conn)
            .execute(
                "SELECT max(1 - (embedding <=> %s)) FROM templates"
                " WHERE subject_id = %s AND model_id = %s",
                (vector, subject_id, model_id),
                prepare=True,
            )
            .fetchone()
        )
        return None if row is None or row[0] is None else clamp(row[0])

    def keep_live(
        self,
        conn: Connection,
        candidates: Sequence[tuple[uuid.UUID, float]],
        *,
        gallery_id: uuid.UUID | None,
        model_id: str,
    ) -> list[Hit]:
        """Keep the candidates Postgres still holds (in the gallery, for the model), with
        the subject id Postgres gives, in the candidates' order."""
        if not candidates:
            return []
        ids = [template_id for template_id, _ in candidates]
        rows = (
            self.raw(conn)
            .execute(
                "SELECT id, subject_id FROM templates WHERE id = ANY(%s) AND model_id = %s"
                " AND (%s::uuid IS NULL OR gallery_id = %s::uuid)",
                (ids, model_id, gallery_id, gallery_id),
                prepare=True,
            )
            .fetchall()
        )
        subjects = {row[0]: row[1] for row in rows}
        return [
            Hit(template_id=tid, subject_id=subjects[tid], similarity=clamp(sim))
            for tid, sim in candidates
            if tid in subjects
        ]
