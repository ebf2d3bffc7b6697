"""The audit log: who did what to which object."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from service.core.principal import Principal
from service.core.request_context import current_request_id
from service.db.models import AuditLog


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
