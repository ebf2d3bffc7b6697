"""Telling a milvus-lite file from a Milvus server address (the factory and the backend
both ask, and the backend must not import the factory that imports it)."""

from __future__ import annotations


def is_milvus_lite(uri: str) -> bool:
    """A milvus-lite file rather than a Milvus server's address."""
    return not uri.startswith(("http://", "https://", "tcp://", "grpc://"))
