"""Managing API keys: the service functions behind the routes and the CLI."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.core.principal import Principal, Role
from service.core.problems import NotFound
from service.db.models import ApiKey
from service.db.pagination import page, paginate
from service.domain.audit import record
from service.domain.auth.api_keys import KEY_PREFIX, NewKey, create_api_key


def public(row: ApiKey) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "prefix": row.prefix,
        "role": Role(row.role),
        "galleries": row.gallery_ids,
        "created_at": row.created_at,
        "last_used_at": row.last_used_at,
        "revoked_at": row.revoked_at,
    }


def create(
    session: Session,
    *,
    name: str,
    role: Role,
    galleries: list[uuid.UUID] | None,
    actor: Principal | None,
) -> NewKey:
    new = create_api_key(
        session,
        name=name,
        role=role,
        gallery_ids=galleries,
        created_by=f"{actor.kind}:{actor.id}" if actor else "cli",
    )
    session.refresh(new.row)
    record(
        session,
        actor=actor,
        action="api_key.create",
        target_type="api_key",
        target_id=str(new.row.id),
        details={"name": name, "role": role.value},
    )
    return new


def list_page(
    session: Session, *, limit: int, cursor: str | None
) -> tuple[list[ApiKey], str | None]:
    query = paginate(
        select(ApiKey), created_col=ApiKey.created_at, id_col=ApiKey.id, limit=limit, cursor=cursor
    )
    return page(session.scalars(query).all(), limit)


def find(session: Session, ref: str) -> ApiKey:
    """The key named by its id or by the prefix that ``keys list`` and the key itself
    show (``fp_<prefix>_…``: with or without ``fp_``, or the whole key)."""
    ref = ref.strip()
    try:
        key_id = uuid.UUID(ref)
    except ValueError:
        key_id = None
    row = session.get(ApiKey, key_id) if key_id else None
    if row is None and key_id is None:
        body = ref.removeprefix(KEY_PREFIX)
        prefix = body.partition("_")[0]
        row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix)) if prefix else None
    if row is None:
        raise NotFound(f"no API key with id or prefix {ref!r}")
    return row


def revoke(session: Session, *, key_id: uuid.UUID, actor: Principal) -> None:
    row = session.get(ApiKey, key_id)
    if row is None:
        raise NotFound(f"no API key {key_id}")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        record(
            session,
            actor=actor,
            action="api_key.revoke",
            target_type="api_key",
            target_id=str(key_id),
        )
