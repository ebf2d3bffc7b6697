"""The ``models`` table's rows: registered once from the model registry, never updated
(the registry stays the source of each threshold; the row records it at registration)."""

from __future__ import annotations

from sqlalchemy import Connection, text

from indexing.types import ModelSpec

_REGISTER = text(
    "INSERT INTO models (id, dim, metric, threshold, version)"
    " VALUES (:id, :dim, :metric, :threshold, :version) ON CONFLICT (id) DO NOTHING"
)


def register_model(conn: Connection, spec: ModelSpec) -> None:
    """Insert the model's row unless it exists; safe under concurrent first uses."""
    conn.execute(
        _REGISTER,
        {
            "id": spec.id,
            "dim": spec.dim,
            "metric": spec.metric,
            "threshold": spec.threshold,
            "version": spec.version,
        },
    )
