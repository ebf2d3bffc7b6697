"""The vector-index interface: result types, configuration and the ``VectorIndex``
protocol every backend (pgvector, Qdrant, Qdrant Edge, Milvus) implements.

Postgres is the system of record. With pgvector the ``templates`` table *is* the index;
the other engines hold a projection of it, written through the ``index_outbox`` table
(see :mod:`retrieval.outbox`) and rebuilt from it (see :mod:`retrieval.rebuild`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from sqlalchemy import Connection

from retrieval.errors import InvalidModelId
from retrieval.types import Hit, Vector

if TYPE_CHECKING:
    from retrieval.pg import PgSupport


_MODEL_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def check_model_id(model_id: str) -> str:
    """Model ids end up in index names and collection names: refuse anything else."""
    if not _MODEL_ID.match(model_id):
        raise InvalidModelId(model_id)
    return model_id


@dataclass(frozen=True, slots=True)
class SubjectHit:
    """One subject ranked by its best-matching template."""

    subject_id: uuid.UUID
    similarity: float
    template_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class TemplateRow:
    """A template as Postgres stores it; ``embedding`` is (dim,) float32."""

    id: uuid.UUID
    face_id: uuid.UUID
    subject_id: uuid.UUID
    gallery_id: uuid.UUID
    model_id: str
    embedding: Vector


@dataclass(frozen=True, slots=True)
class IndexPoint:
    """What an external engine stores per template: the vector and the ids to filter on."""

    template_id: uuid.UUID
    subject_id: uuid.UUID
    gallery_id: uuid.UUID
    vector: Vector


@dataclass(frozen=True, slots=True)
class IndexHealth:
    ok: bool
    backend: str
    detail: str


@dataclass(frozen=True)
class IndexConfig:
    """How to build the index. ``backend``: pgvector | qdrant | qdrant-edge | milvus.

    qdrant: ``qdrant_url`` is ``http(s)://…`` for a server or cluster, or ``:memory:`` /
    ``local:<dir>`` for qdrant-client's local mode (a brute-force scan, for small tests).
    """

    backend: str = "pgvector"
    # The smallest settings measured to keep top-1 agreement with an exact scan ≥ 0.99 at
    # 1M x 128 (benchmarks/search.py); the service reads them from Settings.
    m: int = 24
    ef_construction: int = 128
    ef_search: int = 160
    qdrant_url: str | None = None
    qdrant_api_key: str | None = None
    qdrant_edge_path: Path | None = None
    milvus_uri: str | None = None
    # Filtered pgvector searches stop after this many index tuples (hnsw.max_scan_tuples).
    max_scan_tuples: int = 50_000
    # pgvector: a gallery with at most this many templates of the model is searched
    # exactly through the (gallery_id, model_id) btree. A selective filter makes HNSW
    # walk ~k / share tuples (iterative scan); scanning a small gallery is cheaper, and
    # exact.
    exact_below: int = 20_000


@runtime_checkable
class VectorIndex(Protocol):
    """One ANN index per (model, dimension); galleries are a filter inside it.

    Every method that touches Postgres takes the caller's SQLAlchemy ``Connection`` so
    that index reads and writes share the caller's transaction.
    """

    #: backend name as configured
    name: str
    #: True when vectors live outside Postgres and writes go through the outbox
    external: bool
    #: the backend's Postgres helpers (driver connection, model dimensions, verify)
    pg: PgSupport

    def ensure_model(self, conn: Connection, model_id: str, dim: int) -> None:
        """Create the model's index (pgvector HNSW, Qdrant shard/collection, Milvus
        collection) if missing. Idempotent."""
        ...

    def drop_model(self, conn: Connection, model_id: str) -> None:
        """Drop the model's index. Postgres rows stay (they are the truth)."""
        ...

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
        """Top ``k`` templates of ``model_id`` in ``gallery_id`` (None: every gallery),
        best first. Never returns a template that Postgres no longer holds."""
        ...

    def verify(
        self, conn: Connection, vector: Vector, *, subject_id: uuid.UUID, model_id: str
    ) -> float | None:
        """Best cosine similarity among the subject's templates for the model, through
        the (subject_id, model_id) btree and not the ANN; None when it has none."""
        ...

    def count(self, conn: Connection, *, model_id: str, gallery_id: uuid.UUID | None = None) -> int:
        """How many vectors the index holds for the model (and gallery)."""
        ...

    def health(self, conn: Connection) -> IndexHealth: ...

    def close(self) -> None: ...


@runtime_checkable
class ExternalStore(Protocol):
    """The write side of an index that lives outside Postgres. Only the outbox relay and
    rebuild call these; upserts and deletes are idempotent."""

    def upsert(self, model_id: str, points: Sequence[IndexPoint]) -> None: ...

    def delete(self, model_id: str, template_ids: Sequence[uuid.UUID]) -> None: ...

    def delete_gallery(self, model_id: str, gallery_id: uuid.UUID) -> None: ...

    def optimize(self, model_id: str) -> None:
        """Finish pending index work (build HNSW over fresh segments, flush)."""
        ...
