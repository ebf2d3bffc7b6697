"""What a report covers: a time range, a gallery, a model, and the galleries the caller
may see. Every report's WHERE clause is built here, from fixed fragments and bind
parameters only."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.core.principal import Principal
from service.core.problems import Forbidden


@dataclass(frozen=True)
class Filters:
    since: datetime | None = None
    until: datetime | None = None
    gallery_id: uuid.UUID | None = None
    model_id: str | None = None


@dataclass(frozen=True)
class Scope:
    """Filters narrowed to what the principal sees: ``galleries`` None means every
    gallery (and the decisions of none, such as a verify of two images)."""

    filters: Filters
    galleries: tuple[uuid.UUID, ...] | None

    def where(self, alias: str = "d", *, time_column: str = "created_at") -> tuple[str, dict]:
        """``WHERE …`` over ``alias`` (a row of analytics.decisions or alike) and its
        bind parameters."""
        clauses = ["true"]
        params: dict[str, Any] = {}
        f = self.filters
        if f.since is not None:
            clauses.append(f"{alias}.{time_column} >= :since")
            params["since"] = f.since
        if f.until is not None:
            clauses.append(f"{alias}.{time_column} < :until")
            params["until"] = f.until
        if f.gallery_id is not None:
            clauses.append(f"{alias}.gallery_id = :gallery_id")
            params["gallery_id"] = f.gallery_id
        if f.model_id is not None:
            clauses.append(f"{alias}.model_id = :model_id")
            params["model_id"] = f.model_id
        if self.galleries is not None:
            clauses.append(f"{alias}.gallery_id = ANY(:galleries)")
            params["galleries"] = list(self.galleries)
        return "WHERE " + " AND ".join(clauses), params


def scope_for(principal: Principal, filters: Filters) -> Scope:
    """An operator limited to some galleries reports on those alone; asking for another
    is refused rather than answered with zeros that look like a quiet week."""
    if principal.gallery_ids is None:
        return Scope(filters, None)
    if filters.gallery_id is not None and filters.gallery_id not in principal.gallery_ids:
        raise Forbidden(f"this key cannot see gallery {filters.gallery_id}")
    return Scope(filters, tuple(sorted(principal.gallery_ids)))
