"""Deliveries of one endpoint: list (by status), send one again, queue every failed one
of a time window again, and a test event. Sending again keeps the delivery's
``webhook-id``: to the receiver it is the same message, which it may ignore."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from service.core.principal import Principal
from service.core.problems import NotFound
from service.db.models import Event, WebhookDelivery
from service.db.pagination import page, paginate
from service.domain.audit import record
from service.domain.events import CHANNEL, TEST, announce_to
from service.domain.webhooks import endpoints
from service.domain.webhooks.schemas import DeliveryPublic

_NOTIFY = text(f"SELECT pg_notify('{CHANNEL}', '')")


def public(delivery: WebhookDelivery, event: Event) -> DeliveryPublic:
    return DeliveryPublic(
        id=delivery.id,
        webhook_id=delivery.webhook_id,
        event_id=event.id,
        event_type=event.event_type,
        message_id=str(event.payload["id"]),
        status=delivery.status,  # type: ignore[arg-type]
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at,
        last_attempt_at=delivery.last_attempt_at,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        last_latency_ms=delivery.last_latency_ms,
        last_response=delivery.last_response,
        created_at=delivery.created_at,
        delivered_at=delivery.delivered_at,
    )


def list_page(
    session: Session,
    principal: Principal,
    webhook_id: uuid.UUID,
    *,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[DeliveryPublic], str | None]:
    endpoints.get(session, principal, webhook_id)
    query = (
        select(WebhookDelivery, Event)
        .join(Event, Event.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.webhook_id == webhook_id)
    )
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    query = paginate(
        query,
        created_col=WebhookDelivery.created_at,
        id_col=WebhookDelivery.id,
        limit=limit,
        cursor=cursor,
    )
    rows, next_cursor = page([_Pair(d, e) for d, e in session.execute(query).all()], limit)
    return [public(r.delivery, r.event) for r in rows], next_cursor


class _Pair:
    """A (delivery, event) row that :func:`page` can read ``created_at`` and ``id`` of."""

    def __init__(self, delivery: WebhookDelivery, event: Event) -> None:
        self.delivery, self.event = delivery, event
        self.created_at, self.id = delivery.created_at, delivery.id


def _requeue(**values: Any) -> dict[str, Any]:
    return {
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": datetime.now(UTC),
        **values,
    }


def redeliver(
    session: Session, principal: Principal, webhook_id: uuid.UUID, delivery_id: uuid.UUID
) -> DeliveryPublic:
    """Queue one delivery again, whatever its status, with a fresh retry schedule."""
    endpoints.get(session, principal, webhook_id)
    delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is None or delivery.webhook_id != webhook_id:
        raise NotFound(f"no delivery {delivery_id} of webhook {webhook_id}")
    for name, value in _requeue().items():
        setattr(delivery, name, value)
    session.flush()
    session.execute(_NOTIFY)
    record(
        session, actor=principal, action="webhook.redeliver", target_type="webhook_delivery",
        target_id=str(delivery_id),
    )  # fmt: skip
    event = session.get(Event, delivery.event_id)
    assert event is not None
    return public(delivery, event)


def recover(
    session: Session,
    principal: Principal,
    webhook_id: uuid.UUID,
    *,
    since: datetime,
    until: datetime | None,
) -> int:
    """Queue every failed delivery created in [since, until) again; the dispatchers send
    them in the background. Returns how many were queued."""
    endpoints.get(session, principal, webhook_id)
    query = (
        update(WebhookDelivery)
        .where(
            WebhookDelivery.webhook_id == webhook_id,
            WebhookDelivery.status == "failed",
            WebhookDelivery.created_at >= since,
        )
        .values(**_requeue())
    )
    if until is not None:
        query = query.where(WebhookDelivery.created_at < until)
    count = session.execute(query).rowcount  # type: ignore[attr-defined]
    session.execute(_NOTIFY)
    record(
        session, actor=principal, action="webhook.recover", target_type="webhook",
        target_id=str(webhook_id), details={"since": since.isoformat(), "queued": count},
    )  # fmt: skip
    return int(count)


def send_test(
    session: Session, principal: Principal, webhook_id: uuid.UUID
) -> tuple[int, uuid.UUID]:
    """A ``webhook.test`` event to this endpoint alone, delivered like any other."""
    row = endpoints.get(session, principal, webhook_id)
    event_id = announce_to(session, row.id, TEST, {"webhook_id": str(row.id)})
    delivery_id = session.scalar(
        select(WebhookDelivery.id).where(WebhookDelivery.event_id == event_id)
    )
    assert delivery_id is not None
    return event_id, delivery_id
