"""The audit log: who did what to which object. :func:`record` writes every row;
:func:`list_page` reads them back for the CLI and ``GET /v1/audit``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.core.principal import Principal
from service.core.problems import Forbidden
from service.core.request_context import current_request_id
from service.db.models import AuditLog
from service.db.pagination import page, paginate


def record(
    session: Session,
    *,
    actor: Principal | None,
    action: str,
    target_type: str,
    target_id: str,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditLog(
            actor_type=actor.kind if actor else "cli",
            actor_id=actor.id if actor else "cli",
            action=action,
            target_type=target_type,
            target_id=target_id,
            details=details or {},
            request_id=current_request_id(),
        )
    )


def list_page(
    session: Session,
    principal: Principal,
    *,
    limit: int,
    cursor: str | None,
    action: str | None = None,
    actor_id: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[list[AuditLog], str | None]:
    """Newest first. The log spans every gallery (key changes, erasures of galleries
    the caller may not know of), so a key restricted to some galleries may not read it."""
    if principal.gallery_ids is not None:
        raise Forbidden("the audit log needs an admin not restricted to some galleries")
    query = select(AuditLog)
    if action is not None and action.endswith("."):
        # "subject." reads every subject action.
        query = query.where(AuditLog.action.startswith(action, autoescape=True))
    elif action is not None:
        query = query.where(AuditLog.action == action)
    filters = {
        AuditLog.actor_id: actor_id,
        AuditLog.target_type: target_type,
        AuditLog.target_id: target_id,
    }
    for column, value in filters.items():
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(AuditLog.at >= since)
    if until is not None:
        query = query.where(AuditLog.at < until)
    query = paginate(query, created_col=AuditLog.at, id_col=AuditLog.id, limit=limit, cursor=cursor)
    return page(session.scalars(query).all(), limit, created="at")
