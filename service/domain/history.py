"""Verification history: the audit trail of every verify, search and liveness decision.
:func:`record` writes every row; the list and get functions read them."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.core.principal import Principal, Role
from service.core.problems import NotFound
from service.core.request_context import current_request_id
from service.db.models import Verification
from service.db.pagination import page, paginate
from service.domain import audit
from service.domain.events import announce_decision


def record(
    session: Session,
    *,
    kind: str,
    principal: Principal,
    started: float | None = None,
    row_id: uuid.UUID | None = None,
    **fields: Any,
) -> Verification:
    """Write one history row (flushed, committed with the caller's transaction): who
    asked, under which request id, and, with ``started`` (a ``perf_counter`` value), how
    long the decision took up to this write; and its webhook event in the outbox."""
    row = Verification(
        id=row_id or uuid.uuid4(),
        kind=kind,
        principal_type=principal.kind,
        principal_id=principal.id,
        request_id=current_request_id(),
        **fields,
    )
    if started is not None:
        row.latency_ms = round((time.perf_counter() - started) * 1000, 2)
    session.add(row)
    session.flush()
    # Every decision is announced from here, the one place it is recorded.
    announce_decision(session, row)
    return row


def _scoped(principal: Principal):  # noqa: ANN202 - a SQLAlchemy Select
    query = select(Verification)
    if principal.gallery_ids is not None:
        query = query.where(Verification.gallery_id.in_(list(principal.gallery_ids)))
    if not principal.can_act_as(Role.operator):
        # A client sees only its own calls.
        query = query.where(Verification.principal_id == principal.id)
    return query


def list_page(
    session: Session,
    principal: Principal,
    *,
    limit: int,
    cursor: str | None,
    gallery_id: uuid.UUID | None = None,
    subject_id: uuid.UUID | None = None,
    kind: str | None = None,
    match: bool | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[list[Verification], str | None]:
    query = _scoped(principal)
    filters = {
        Verification.gallery_id: gallery_id,
        Verification.subject_id: subject_id,
        Verification.kind: kind,
        Verification.match: match,
    }
    for column, value in filters.items():
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(Verification.created_at >= since)
    if until is not None:
        query = query.where(Verification.created_at < until)
    query = paginate(
        query,
        created_col=Verification.created_at,
        id_col=Verification.id,
        limit=limit,
        cursor=cursor,
    )
    return page(session.scalars(query).all(), limit)


def get(session: Session, principal: Principal, verification_id: uuid.UUID) -> Verification:
    row = session.scalar(_scoped(principal).where(Verification.id == verification_id))
    if row is None:
        raise NotFound(f"no verification {verification_id}")
    return row


def set_label(
    session: Session,
    principal: Principal,
    verification_id: uuid.UUID,
    *,
    label: str | None,
    note: str | None,
) -> Verification:
    """Record a reviewer's ground truth on one decision (operator, within its galleries),
    with who said so and when, and audit it: the error-rate reports count it from now on.
    A label of ``None`` withdraws the previous one."""
    row = session.scalar(
        _scoped(principal).where(Verification.id == verification_id).with_for_update()
    )
    if row is None:
        raise NotFound(f"no verification {verification_id}")
    previous = row.label
    row.label = label
    row.label_note = note if label is not None else None
    row.labelled_by = f"{principal.kind}:{principal.id}" if label is not None else None
    row.labelled_at = datetime.now(UTC) if label is not None else None
    audit.record(
        session,
        actor=principal,
        action="verification.label",
        target_type="verification",
        target_id=str(row.id),
        details={"label": label, "previous": previous, "note": note},
    )
    session.flush()
    return row
