"""/v1/webhooks: endpoints, their deliveries, redelivery, recovery and a test event."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, status

from service.domain.webhooks import deliveries, endpoints
from service.domain.webhooks.endpoints import Keys
from service.domain.webhooks.schemas import (
    DeliveryPage,
    DeliveryPublic,
    RecoverAccepted,
    RecoverRequest,
    SecretRotated,
    TestSent,
    WebhookCreate,
    WebhookCreated,
    WebhookPage,
    WebhookPublic,
    WebhookUpdate,
)
from service.http.deps import ContainerDep, OperatorPrincipal, SessionDep

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


async def _keys(container: ContainerDep) -> Keys:
    return container.webhook_keys


KeysDep = Annotated[Keys, Depends(_keys)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WebhookCreated)
def create_webhook(
    body: WebhookCreate, principal: OperatorPrincipal, session: SessionDep, keys: KeysDep
) -> WebhookCreated:
    """The secret (``whsec_…``) is in this response only; store it now."""
    row, secret = endpoints.create(
        session, keys, principal=principal, url=body.url, events=body.events,
        galleries=body.galleries, description=body.description,
    )  # fmt: skip
    return WebhookCreated(**endpoints.public(row).model_dump(), secret=secret)


@router.get("", response_model=WebhookPage)
def list_webhooks(
    principal: OperatorPrincipal,
    session: SessionDep,
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = None,
) -> WebhookPage:
    rows, next_cursor = endpoints.list_page(session, principal, limit=limit, cursor=cursor)
    return WebhookPage(items=[endpoints.public(r) for r in rows], next_cursor=next_cursor)


@router.get("/{webhook_id}", response_model=WebhookPublic)
def get_webhook(
    webhook_id: uuid.UUID, principal: OperatorPrincipal, session: SessionDep
) -> WebhookPublic:
    return endpoints.public(endpoints.get(session, principal, webhook_id))


@router.patch("/{webhook_id}", response_model=WebhookPublic)
def update_webhook(
    webhook_id: uuid.UUID,
    body: WebhookUpdate,
    principal: OperatorPrincipal,
    session: SessionDep,
    keys: KeysDep,
) -> WebhookPublic:
    row = endpoints.update(session, keys, principal=principal, webhook_id=webhook_id, change=body)
    return endpoints.public(row)


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_webhook(
    webhook_id: uuid.UUID, principal: OperatorPrincipal, session: SessionDep
) -> None:
    endpoints.delete(session, principal=principal, webhook_id=webhook_id)


@router.post("/{webhook_id}/rotate-secret", response_model=SecretRotated)
def rotate_secret(
    webhook_id: uuid.UUID, principal: OperatorPrincipal, session: SessionDep, keys: KeysDep
) -> SecretRotated:
    """Deliveries are signed with both the old and the new secret for 24 hours."""
    row, secret = endpoints.rotate_secret(session, keys, principal=principal, webhook_id=webhook_id)
    assert row.previous_secret_expires_at is not None
    return SecretRotated(
        id=row.id, secret=secret, previous_secret_valid_until=row.previous_secret_expires_at
    )


@router.get("/{webhook_id}/deliveries", response_model=DeliveryPage)
def list_deliveries(
    webhook_id: uuid.UUID,
    principal: OperatorPrincipal,
    session: SessionDep,
    status_: Annotated[
        Literal["pending", "delivered", "failed"] | None, Query(alias="status")
    ] = None,
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = None,
) -> DeliveryPage:
    items, next_cursor = deliveries.list_page(
        session, principal, webhook_id, status=status_, limit=limit, cursor=cursor
    )
    return DeliveryPage(items=items, next_cursor=next_cursor)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryPublic,
)
def redeliver(
    webhook_id: uuid.UUID,
    delivery_id: uuid.UUID,
    principal: OperatorPrincipal,
    session: SessionDep,
) -> DeliveryPublic:
    """Send this delivery again (same ``webhook-id``), with a fresh retry schedule."""
    return deliveries.redeliver(session, principal, webhook_id, delivery_id)


@router.post(
    "/{webhook_id}/recover", status_code=status.HTTP_202_ACCEPTED, response_model=RecoverAccepted
)
def recover(
    webhook_id: uuid.UUID,
    body: RecoverRequest,
    principal: OperatorPrincipal,
    session: SessionDep,
) -> RecoverAccepted:
    """Queue every failed delivery since ``since`` again; they are sent in the background."""
    count = deliveries.recover(session, principal, webhook_id, since=body.since, until=body.until)
    return RecoverAccepted(queued=count)


@router.post("/{webhook_id}/test", status_code=status.HTTP_202_ACCEPTED, response_model=TestSent)
def send_test(webhook_id: uuid.UUID, principal: OperatorPrincipal, session: SessionDep) -> TestSent:
    """A ``webhook.test`` event to this endpoint, delivered (and retried) like any other."""
    event_id, delivery_id = deliveries.send_test(session, principal, webhook_id)
    return TestSent(event_id=event_id, delivery_id=delivery_id)
