"""Build the configured index once per process (in the API's lifespan, the worker's
start, a CLI command) and pass it down."""

from __future__ import annotations

from pathlib import Path

from retrieval.base import IndexConfig, VectorIndex
from retrieval.errors import UnknownBackend
from retrieval.milvus_uri import is_milvus_lite


def build_index(config: IndexConfig) -> VectorIndex:
    """Match the backend name to its module; engines are imported only when chosen, so a
    pgvector deployment needs neither qdrant nor pymilvus installed."""
    match config.backend:
        case "pgvector":
            from retrieval.backends.pgvector_index import PgVectorIndex

            return PgVectorIndex(config)
        case "qdrant":
            from retrieval.backends.qdrant_index import QdrantIndex, make_client

            return QdrantIndex(config, make_client(config))
        case "qdrant-edge":
            from retrieval.backends.qdrant_edge_index import QdrantEdgeIndex

            return QdrantEdgeIndex(config, _required(config.qdrant_edge_path, "qdrant_edge_path"))
        case "milvus":
            from retrieval.backends.milvus_index import MilvusIndex

            uri = config.milvus_uri
            if uri is None:
                raise ValueError("the milvus backend needs milvus_uri (a server URL or a .db file)")
            return MilvusIndex(config, uri)
        case other:
            raise UnknownBackend(other)


def single_process_engine(config: IndexConfig) -> str | None:
    """The embedded engine of ``config`` that only one process may hold open, or None.

    Qdrant Edge locks its shard's write-ahead log for the process that opened it (a
    second one fails with WouldBlock); each process that opens a milvus-lite file runs
    its own engine on it, and the others see its collections released. Several API
    processes need PostgreSQL or an engine's server."""
    if config.backend == "qdrant-edge":
        return "qdrant-edge"
    if config.backend == "milvus" and config.milvus_uri and is_milvus_lite(config.milvus_uri):
        return "milvus-lite"
    return None


def _required(path: Path | None, field: str) -> Path:
    if path is None:
        raise ValueError(f"the qdrant-edge backend needs {field}")
    return path
