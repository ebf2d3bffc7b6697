"""The retrieval conformance suite and the outbox cases, unchanged, against real
servers: pgvector on an external PostgreSQL 18 (over TCP, migrated by ``faceprint
migrate``) and the Milvus 2.3 standalone server.

The cases are the very functions of tests/retrieval; only the ``index`` and
``external`` fixtures differ, so the suites cannot drift apart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine

from retrieval.base import IndexConfig, VectorIndex
from retrieval.factory import build_index
from tests.retrieval import test_conformance, test_outbox
from tests.retrieval.conftest import MODEL, backend_config, make_gallery, register_model, sync

pytestmark = pytest.mark.servers

_SHARED = {
    **{k: v for k, v in vars(test_conformance).items() if k.startswith("test_")},
    **{k: v for k, v in vars(test_outbox).items() if k.startswith("test_")},
    "two_galleries": test_conformance.two_galleries,
}
# pgvector needs no outbox: that case is about the embedded choice, already run there.
_SHARED.pop("test_pgvector_needs_no_outbox")
globals().update(_SHARED)


def _server_config(name: str, milvus_uri: str | None, tmp_path: Path) -> IndexConfig:
    if name == "milvus-server":
        assert milvus_uri is not None
        return IndexConfig(backend="milvus", milvus_uri=milvus_uri)
    return backend_config(name, tmp_path)


@pytest.fixture(params=["milvus-server", "pgvector", "pgvector-hnsw"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorIndex]:
    uri = request.getfixturevalue("milvus_uri") if request.param == "milvus-server" else None
    built = build_index(_server_config(request.param, uri, tmp_path))
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def external(milvus_uri: str) -> Iterator[VectorIndex]:  # noqa: F811 - replaces the suite's
    built = build_index(IndexConfig(backend="milvus", milvus_uri=milvus_uri))
    try:
        yield built
    finally:
        built.close()


def test_the_suites_run_here() -> None:
    """A rename in tests/retrieval must not silently empty this module."""
    assert len([k for k in _SHARED if k.startswith("test_")]) >= 14


def test_milvus_server_gets_hnsw_and_a_scalar_index(engine: Engine, milvus_uri: str) -> None:
    """Milvus 2.3 refuses INVERTED on a VARCHAR: the backend falls back to the server's
    default scalar index, and the vectors are under HNSW with the configured m."""
    index = build_index(IndexConfig(backend="milvus", milvus_uri=milvus_uri, m=24))
    try:
        with engine.begin() as conn:
            register_model(conn, index)
            gallery = make_gallery(conn, index, np.random.default_rng(3), subjects=4,
                                   per_subject=2)  # fmt: skip
        sync(engine, index)
        client = index.client  # type: ignore[attr-defined]
        name = client.list_collections()[0]
        described = {i: client.describe_index(name, i) for i in client.list_indexes(name)}
        assert described["vector"]["index_type"] == "HNSW"
        assert described["vector"]["M"] == "24"
        assert "gallery_id" in described
        assert str(client.get_load_state(name)["state"]).endswith("Loaded")
        # A second ensure (another process starting) leaves the collection as it is.
        with engine.connect() as conn:
            index.ensure_model(conn, MODEL, 32)
            assert index.count(conn, model_id=MODEL, gallery_id=gallery.id) == 8
    finally:
        index.close()
