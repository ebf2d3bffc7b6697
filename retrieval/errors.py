"""Typed errors of the retrieval layer. The API maps each to problem+json; they carry the
values a caller needs to say what went wrong."""

from __future__ import annotations


class RetrievalError(Exception):
    """Base of every error raised by ``retrieval``."""


class InvalidVector(RetrievalError, ValueError):
    """A probe or template vector that cannot be indexed (wrong shape, NaN, zero norm)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid vector: {reason}")
        self.reason = reason


class DimensionMismatch(InvalidVector):
    def __init__(self, *, model_id: str, expected: int, got: int) -> None:
        super().__init__(f"model {model_id!r} has dimension {expected}, the vector has {got}")
        self.model_id = model_id
        self.expected = expected
        self.got = got


class UnknownModel(RetrievalError, LookupError):
    def __init__(self, model_id: str) -> None:
        super().__init__(f"no model {model_id!r} is registered")
        self.model_id = model_id


class InvalidModelId(RetrievalError, ValueError):
    """Model ids become index and collection names, so they are restricted to a safe
    alphabet."""

    def __init__(self, model_id: str) -> None:
        super().__init__(
            f"model id {model_id!r} must be 1-64 characters of letters, digits, '.', '_' or '-'"
        )
        self.model_id = model_id


class IndexUnavailable(RetrievalError):
    """The vector engine cannot be reached or refused the operation."""

    def __init__(self, backend: str, detail: str) -> None:
        super().__init__(f"{backend} index unavailable: {detail}")
        self.backend = backend
        self.detail = detail


class UnknownBackend(RetrievalError, ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"unknown vector backend {name!r}: use pgvector, qdrant, qdrant-edge or milvus"
        )
        self.name = name
