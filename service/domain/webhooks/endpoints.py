"""Webhook endpoints: create (the secret shown once), list, read, change, delete,
rotate the secret. A gallery-scoped caller sees and makes only endpoints confined to
its own galleries; another's endpoint is a 404, as a missing one."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.core.principal import Principal
from service.core.problems import NotFound, Unprocessable
from service.db.models import Webhook
from service.db.pagination import page, paginate
from service.domain.audit import record
from service.domain.events import EVENT_TYPES
from service.domain.galleries import get_visible
from service.domain.webhooks import signing
from service.domain.webhooks.schemas import WebhookPublic, WebhookUpdate
from service.domain.webhooks.targets import Policy, resolve

ROTATION_OVERLAP = timedelta(hours=24)


@dataclass(frozen=True)
class Keys:
    """What the endpoint functions need besides the session."""

    encryption_key: bytes
    policy: Policy


def _check_events(events: list[str]) -> list[str]:
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown:
        raise Unprocessable(f"unknown event types: {', '.join(unknown)}", known=list(EVENT_TYPES))
    return sorted(set(events))


def _check_galleries(
    session: Session, principal: Principal, galleries: list[uuid.UUID] | None
) -> list[uuid.UUID] | None:
    if galleries is None:
        if principal.gallery_ids is None:
            return None
        # A scoped caller's endpoint is confined to the caller's galleries.
        return sorted(principal.gallery_ids)
    if not galleries:
        raise Unprocessable("galleries is empty; omit it for all galleries")
    for gallery_id in galleries:
        get_visible(session, principal, gallery_id)
    return sorted(set(galleries))


def _visible(principal: Principal, row: Webhook) -> bool:
    if principal.gallery_ids is None:
        return True
    return row.gallery_ids is not None and set(row.gallery_ids) <= principal.gallery_ids


def public(row: Webhook, now: datetime | None = None) -> WebhookPublic:
    now = now or datetime.now(UTC)
    until = row.previous_secret_expires_at
    return WebhookPublic(
        id=row.id,
        url=row.url,
        events=list(row.events),
        galleries=list(row.gallery_ids) if row.gallery_ids is not None else None,
        description=row.description,
        active=row.active,
        disabled_reason=row.disabled_reason,
        previous_secret_valid_until=until if until is not None and until > now else None,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def create(
    session: Session,
    keys: Keys,
    *,
    principal: Principal,
    url: str,
    events: list[str],
    galleries: list[uuid.UUID] | None,
    description: str | None,
) -> tuple[Webhook, str]:
    resolve(url, keys.policy)
    secret = signing.new_secret()
    row = Webhook(
        url=url,
        secret_encrypted=signing.encrypt(keys.encryption_key, secret),
        events=_check_events(events),
        gallery_ids=_check_galleries(session, principal, galleries),
        description=description,
        active=True,
        created_by=f"{principal.kind}:{principal.id}",
    )
    session.add(row)
    session.flush()
    record(
        session, actor=principal, action="webhook.create", target_type="webhook",
        target_id=str(row.id), details={"events": row.events},
    )  # fmt: skip
    session.refresh(row)
    return row, secret


def list_page(
    session: Session, principal: Principal, *, limit: int, cursor: str | None
) -> tuple[list[Webhook], str | None]:
    query = select(Webhook)
    if principal.gallery_ids is not None:
        query = query.where(
            Webhook.gallery_ids.is_not(None),
            Webhook.gallery_ids.contained_by(list(principal.gallery_ids)),
        )
    query = paginate(
        query, created_col=Webhook.created_at, id_col=Webhook.id, limit=limit, cursor=cursor
    )
    return page(session.scalars(query).all(), limit)


def get(
    session: Session, principal: Principal, webhook_id: uuid.UUID, *, lock: bool = False
) -> Webhook:
    row = session.get(Webhook, webhook_id, with_for_update=lock or None)
    if row is None or not _visible(principal, row):
        raise NotFound(f"no webhook {webhook_id}")
    return row


def update(
    session: Session,
    keys: Keys,
    *,
    principal: Principal,
    webhook_id: uuid.UUID,
    change: WebhookUpdate,
) -> Webhook:
    row = get(session, principal, webhook_id, lock=True)
    given = change.model_fields_set
    if "url" in given and change.url is not None:
        resolve(change.url, keys.policy)
        row.url = change.url
    if "events" in given and change.events is not None:
        row.events = _check_events(change.events)
    if "galleries" in given:
        row.gallery_ids = _check_galleries(session, principal, change.galleries)
    if "description" in given:
        row.description = change.description
    if "active" in given and change.active is not None:
        row.active = change.active
        if change.active:
            row.disabled_reason = None
    row.updated_at = datetime.now(UTC)
    session.flush()
    record(
        session, actor=principal, action="webhook.update", target_type="webhook",
        target_id=str(row.id), details={"fields": sorted(given)},
    )  # fmt: skip
    return row


def delete(session: Session, *, principal: Principal, webhook_id: uuid.UUID) -> None:
    row = get(session, principal, webhook_id, lock=True)
    session.delete(row)
    record(
        session, actor=principal, action="webhook.delete", target_type="webhook",
        target_id=str(webhook_id),
    )  # fmt: skip


def rotate_secret(
    session: Session, keys: Keys, *, principal: Principal, webhook_id: uuid.UUID
) -> tuple[Webhook, str]:
    """A new secret; the old one keeps signing (alongside) for 24 hours, so receivers
    can switch without losing a delivery."""
    row = get(session, principal, webhook_id, lock=True)
    secret = signing.new_secret()
    now = datetime.now(UTC)
    row.previous_secret_encrypted = row.secret_encrypted
    row.previous_secret_expires_at = now + ROTATION_OVERLAP
    row.secret_encrypted = signing.encrypt(keys.encryption_key, secret)
    row.updated_at = now
    session.flush()
    record(
        session, actor=principal, action="webhook.rotate_secret", target_type="webhook",
        target_id=str(webhook_id),
    )  # fmt: skip
    return row, secret


def signing_secrets(key: bytes, row: Webhook, now: datetime) -> list[str]:
    """The secrets that sign a delivery now: the current one, and the previous one
    while its overlap lasts."""
    out = [signing.decrypt(key, row.secret_encrypted)]
    until = row.previous_secret_expires_at
    if row.previous_secret_encrypted is not None and until is not None and until > now:
        out.append(signing.decrypt(key, row.previous_secret_encrypted))
    return out
