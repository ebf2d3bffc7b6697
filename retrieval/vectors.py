"""Vector validation, in one place: every vector that reaches an index is (dim,) float32,
finite and L2-normalised, so cosine similarity means the same thing on every backend."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from retrieval.errors import DimensionMismatch, InvalidVector
from retrieval.types import Vector


def unit(vector: ArrayLike, *, dim: int | None = None, model_id: str = "?") -> Vector:
    """Return ``vector`` as a unit-norm float32 array of shape (dim,)."""
    try:
        array = np.asarray(vector, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidVector("not a numeric array") from exc
    if array.ndim != 1:
        raise InvalidVector(f"expected one vector, got shape {array.shape}")
    if dim is not None and array.shape[0] != dim:
        raise DimensionMismatch(model_id=model_id, expected=dim, got=array.shape[0])
    if not np.all(np.isfinite(array)):
        raise InvalidVector("contains NaN or infinity")
    norm = float(np.linalg.norm(array))
    if norm == 0.0:
        raise InvalidVector("has zero norm")
    return (array / norm).astype(np.float32, copy=False)


def units(matrix: ArrayLike, *, dim: int, model_id: str = "?") -> Vector:
    """Row-wise :func:`unit` for an (n, dim) matrix."""
    array = np.asarray(matrix, dtype=np.float32)
    if array.ndim != 2:
        raise InvalidVector(f"expected an (n, {dim}) matrix, got shape {array.shape}")
    if array.shape[1] != dim:
        raise DimensionMismatch(model_id=model_id, expected=dim, got=array.shape[1])
    if not np.all(np.isfinite(array)):
        raise InvalidVector("contains NaN or infinity")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    if np.any(norms == 0.0):
        raise InvalidVector("has a row of zero norm")
    return (array / norms).astype(np.float32, copy=False)


def clamp(similarity: float) -> float:
    """Float error can push a cosine a hair past ±1."""
    return max(-1.0, min(1.0, float(similarity)))


def from_pg(value: object) -> Vector:
    """A vector column as the pgvector adapter returns it (``pgvector.Vector`` or an
    array) → float32 array."""
    to_numpy = getattr(value, "to_numpy", None)
    array = to_numpy() if to_numpy is not None else value
    return np.asarray(array, dtype=np.float32)
