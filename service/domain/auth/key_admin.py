"""Managing API keys: the service functions behind the routes and the CLI."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.core.principal import Principal, Role
from service.core.problems import Forbidden, NotFound
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
        "rate_limit_per_minute": row.rate_limit_per_minute,
        "created_at": row.created_at,
        "last_used_at": row.last_used_at,
        "revoked_at": row.revoked_at,
    }


def _check_within(actor: Principal, role: Role, galleries: list[uuid.UUID] | None) -> None:
    """A caller hands out at most what it holds: no higher role, no gallery it cannot see.
    Without this a key scoped to one tenant could mint an unrestricted admin key."""
    if not actor.can_act_as(role):
        raise Forbidden(f"a {actor.role.value} cannot create a {role.value} key")
    if actor.gallery_ids is None:
        return
    if galleries is None:
        raise Forbidden("a key scoped to galleries cannot create a key for every gallery")
    outside = sorted(str(g) for g in set(galleries) - actor.gallery_ids)
    if outside:
        raise Forbidden("galleries outside this key's scope", galleries=outside)


def _limit_within(actor: Principal, wanted: int | None) -> int | None:
    """A key with its own limit cannot hand out a bigger one (0 is no limit, the
    biggest); a key made by it without a limit inherits the creator's."""
    own = actor.rate_limit
    if own is None or own == 0:
        return wanted
    if wanted is None:
        return own
    if wanted == 0 or wanted > own:
        raise Forbidden(f"this key is limited to {own} requests a minute; so is what it creates")
    return wanted


def _in_scope(actor: Principal, row: ApiKey) -> bool:
    if not actor.can_act_as(Role(row.role)):
        return False
    if actor.gallery_ids is None:
        return True
    return row.gallery_ids is not None and set(row.gallery_ids) <= actor.gallery_ids


def create(
    session: Session,
    *,
    name: str,
    role: Role,
    galleries: list[uuid.UUID] | None,
    actor: Principal | None,
    rate_limit: int | None = None,
) -> NewKey:
    # actor None is the CLI, run by whoever holds the database: it may create anything.
    if actor is not None:
        _check_within(actor, role, galleries)
        rate_limit = _limit_within(actor, rate_limit)
    new = create_api_key(
        session,
        name=name,
        role=role,
        gallery_ids=galleries,
        created_by=f"{actor.kind}:{actor.id}" if actor else "cli",
        rate_limit=rate_limit,
    )
    session.refresh(new.row)
    record(
        session,
        actor=actor,
        action="api_key.create",
        target_type="api_key",
        target_id=str(new.row.id),
        details={"name": name, "role": role.value, "rate_limit_per_minute": rate_limit},
    )
    return new


def list_page(
    session: Session, *, limit: int, cursor: str | None, actor: Principal | None = None
) -> tuple[list[ApiKey], str | None]:
    query = select(ApiKey)
    if actor is not None:
        # Same rule as _in_scope, in SQL so that pages stay full.
        allowed = [r.value for r in Role if actor.can_act_as(r)]
        query = query.where(ApiKey.role.in_(allowed))
        if actor.gallery_ids is not None:
            query = query.where(
                ApiKey.gallery_ids.is_not(None),
                ApiKey.gallery_ids.contained_by(list(actor.gallery_ids)),
            )
    query = paginate(
        query, created_col=ApiKey.created_at, id_col=ApiKey.id, limit=limit, cursor=cursor
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
    # 404, not 403, for keys out of scope: their ids are not disclosed.
    if row is None or not _in_scope(actor, row):
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
