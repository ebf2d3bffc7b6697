"""Keyset pagination over (created_at, id) with opaque cursors."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute

from service.core.problems import Problem

T = TypeVar("T")

MAX_LIMIT = 200


class BadCursor(Problem):
    status, slug, title = 400, "bad-cursor", "Invalid cursor"


def encode_cursor(created_at: datetime, row_id: Any) -> str:
    raw = json.dumps([created_at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, row_id = json.loads(base64.urlsafe_b64decode(padded))
        return datetime.fromisoformat(created), row_id
    except (ValueError, TypeError) as exc:
        raise BadCursor("the cursor is not one this service issued") from exc


def paginate(
    query: Select[Any],
    *,
    created_col: InstrumentedAttribute[datetime],
    id_col: InstrumentedAttribute[Any],
    limit: int,
    cursor: str | None,
) -> Select[Any]:
    """Newest first; the query asks for one row more than the page to learn if more exist."""
    if cursor:
        created, row_id = decode_cursor(cursor)
        key: Any = row_id
        python_type = id_col.type.python_type
        if python_type is uuid.UUID:
            key = uuid.UUID(row_id)
        elif python_type is int:
            # Integer keys (the audit log's) come back as text in the cursor.
            try:
                key = int(row_id)
            except ValueError as exc:
                raise BadCursor("the cursor is not one this service issued") from exc
        query = query.where(or_(created_col < created, and_(created_col == created, id_col < key)))
    return query.order_by(created_col.desc(), id_col.desc()).limit(min(limit, MAX_LIMIT) + 1)


def page(rows: Sequence[T], limit: int, created: str = "created_at") -> tuple[list[T], str | None]:
    limit = min(limit, MAX_LIMIT)
    items = list(rows[:limit])
    if len(rows) > limit and items:
        last = items[-1]
        return items, encode_cursor(getattr(last, created), last.id)  # type: ignore[attr-defined]
    return items, None
