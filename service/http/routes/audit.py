"""GET /v1/audit: the audit log (who created, changed, erased or revoked what)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query

from service.domain import audit
from service.domain.schemas import AuditEntry, AuditPage
from service.http.deps import AdminPrincipal, SessionDep

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get("", response_model=AuditPage)
def list_audit(
    principal: AdminPrincipal,
    session: SessionDep,
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = None,
    action: str | None = Query(
        None,
        description="Only this action (gallery.create), or a family ending in a dot (subject.).",
    ),
    actor_id: str | None = Query(None, description="Only this actor (a key or user id, or cli)."),
    target_type: str | None = Query(None, description="gallery, subject, face, api_key, …"),
    target_id: str | None = Query(None, description="Only rows about this object."),
    since: datetime | None = None,
    until: datetime | None = None,
) -> AuditPage:
    """Newest first. Admins not restricted to some galleries only: the log spans all."""
    rows, next_cursor = audit.list_page(
        session, principal, limit=limit, cursor=cursor, action=action, actor_id=actor_id,
        target_type=target_type, target_id=target_id, since=since, until=until,
    )  # fmt: skip
    return AuditPage(
        items=[AuditEntry.model_validate(r, from_attributes=True) for r in rows],
        next_cursor=next_cursor,
    )
