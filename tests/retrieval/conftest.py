"""Retrieval fixtures: every backend built through the factory, and real rows (model,
galleries, subjects, faces, templates) in the per-test database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Connection, Engine

from retrieval.base import IndexConfig, TemplateRow, VectorIndex
from retrieval.factory import build_index
from retrieval.outbox import drain
from retrieval.templates import add_templates, ensure_model_index

MODEL = "test-model-v1"
DIM = 32
# pgvector searches small galleries exactly through the btree; "pgvector-hnsw" turns
# that off so the same cases also run through the HNSW index and iterative scans.
BACKENDS = ["pgvector", "pgvector-hnsw", "qdrant-edge", "milvus", "qdrant-local"]


def backend_config(name: str, tmp_path: Path) -> IndexConfig:
    match name:
        case "pgvector":
            return IndexConfig(backend="pgvector", ef_search=100)
        case "pgvector-hnsw":
            return IndexConfig(backend="pgvector", ef_search=100, exact_below=0)
        case "qdrant-edge":
            return IndexConfig(backend="qdrant-edge", qdrant_edge_path=tmp_path / "edge")
        case "milvus":
            return IndexConfig(backend="milvus", milvus_uri=str(tmp_path / "milvus.db"))
        case "qdrant-local":
            return IndexConfig(backend="qdrant", qdrant_url=":memory:")
    raise AssertionError(name)


@pytest.fixture(params=BACKENDS)
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorIndex]:
    built = build_index(backend_config(request.param, tmp_path))
    try:
        yield built
    finally:
        built.close()


def random_units(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@dataclass
class Gallery:
    id: uuid.UUID
    # subject id -> its template rows
    subjects: dict[uuid.UUID, list[TemplateRow]] = field(default_factory=dict)

    @property
    def templates(self) -> list[TemplateRow]:
        return [t for rows in self.subjects.values() for t in rows]


def register_model(
    conn: Connection, index: VectorIndex, model_id: str = MODEL, dim: int = DIM
) -> None:
    conn.exec_driver_sql(
        "INSERT INTO models (id, dim, metric, threshold, version)"
        " VALUES (%s, %s, 'cosine', 0.5, '1') ON CONFLICT DO NOTHING",
        (model_id, dim),
    )
    ensure_model_index(conn, index, model_id, dim)


def make_gallery(
    conn: Connection,
    index: VectorIndex,
    rng: np.random.Generator,
    *,
    subjects: int,
    per_subject: int,
    model_id: str = MODEL,
    dim: int = DIM,
) -> Gallery:
    """Insert a gallery with ``subjects`` people of ``per_subject`` templates each: the
    real rows, through the same add_templates the service uses."""
    gallery = Gallery(id=uuid.uuid4())
    conn.exec_driver_sql(
        "INSERT INTO galleries (id, name, active_model_id) VALUES (%s, %s, %s)",
        (gallery.id, f"g-{gallery.id.hex[:6]}", model_id),
    )
    rows: list[TemplateRow] = []
    for n in range(subjects):
        subject_id = uuid.uuid4()
        conn.exec_driver_sql(
            "INSERT INTO subjects (id, gallery_id, external_id) VALUES (%s, %s, %s)",
            (subject_id, gallery.id, f"person-{n}"),
        )
        centre = random_units(rng, 1, dim)[0]
        own = []
        for vec in random_units(rng, per_subject, dim) * 0.3 + centre:
            face_id = uuid.uuid4()
            conn.exec_driver_sql(
                "INSERT INTO faces (id, subject_id, gallery_id, image_key, image_sha256)"
                " VALUES (%s, %s, %s, 'k', 's')",
                (face_id, subject_id, gallery.id),
            )
            own.append(
                TemplateRow(
                    id=uuid.uuid4(),
                    face_id=face_id,
                    subject_id=subject_id,
                    gallery_id=gallery.id,
                    model_id=model_id,
                    embedding=(vec / np.linalg.norm(vec)).astype(np.float32),
                )
            )
        gallery.subjects[subject_id] = own
        rows.extend(own)
    add_templates(conn, index, rows)
    return gallery


def sync(engine: Engine, index: VectorIndex) -> int:
    """What the API does after each write for external engines: run the relay."""
    return drain(engine.begin, index)
