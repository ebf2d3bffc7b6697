"""The outbox: :func:`announce` writes an event and one delivery row per subscribed
endpoint in the caller's transaction, so an event exists exactly when the change it
announces committed. The dispatcher sends them afterwards (at least once).

Payloads carry ids, decisions, scores, thresholds, models and the request id; never
images, embeddings or display names: biometric and personal data stay in the database."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from service.db.models import Verification

CHANNEL = "faceprint_webhooks"

VERIFICATION_COMPLETED = "verification.completed"
SEARCH_COMPLETED = "search.completed"
ENROLLMENT_COMPLETED = "enrollment.completed"
ENROLLMENT_FAILED = "enrollment.failed"
LIVENESS_COMPLETED = "liveness.completed"
SUBJECT_DELETED = "subject.deleted"
GALLERY_DELETED = "gallery.deleted"
REINDEX_COMPLETED = "reindex.completed"
REINDEX_ACTIVATED = "reindex.activated"
REINDEX_ROLLED_BACK = "reindex.rolled_back"
TEST = "webhook.test"

EVENT_TYPES = (
    VERIFICATION_COMPLETED,
    SEARCH_COMPLETED,
    ENROLLMENT_COMPLETED,
    ENROLLMENT_FAILED,
    LIVENESS_COMPLETED,
    SUBJECT_DELETED,
    GALLERY_DELETED,
    REINDEX_COMPLETED,
    REINDEX_ACTIVATED,
    REINDEX_ROLLED_BACK,
)

_INSERT_EVENT = text(
    "INSERT INTO events (event_type, payload, gallery_id)"
    " VALUES (:type, CAST(:payload AS jsonb), :gallery) RETURNING id"
)
_INSERT_DELIVERY = text(
    "INSERT INTO webhook_deliveries (id, webhook_id, event_id, status)"
    " VALUES (:id, :webhook, :event, 'pending')"
)
# Delivered at commit, to the dispatchers LISTENing: they wake at once instead of polling.
_NOTIFY = text(f"SELECT pg_notify('{CHANNEL}', '')")


def _conn(where: Session | Connection) -> Connection:
    return where.connection() if isinstance(where, Session) else where


def message(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": event_type,
        "id": f"msg_{uuid.uuid4().hex}",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "data": data,
    }


# announce in one round trip (it sits in every verify's transaction): find the
# subscribers, write the event only if there are any, one delivery each, and wake the
# dispatchers. A data-modifying CTE runs whether or not it is read; pg_notify is read.
_ANNOUNCE = text(
    "WITH subs AS (SELECT id FROM webhooks WHERE active"
    " AND CAST(:type AS varchar) = ANY(events)"
    " AND (gallery_ids IS NULL OR CAST(:gallery AS uuid) = ANY(gallery_ids))),"
    " ev AS (INSERT INTO events (event_type, payload, gallery_id)"
    " SELECT :type, CAST(:payload AS jsonb), :gallery WHERE EXISTS (SELECT 1 FROM subs)"
    " RETURNING id),"
    " deliveries AS (INSERT INTO webhook_deliveries (id, webhook_id, event_id, status)"
    " SELECT gen_random_uuid(), subs.id, ev.id, 'pending' FROM subs CROSS JOIN ev),"
    " woken AS (SELECT pg_notify(:channel, '') FROM ev)"
    " SELECT (SELECT id FROM ev), (SELECT count(*) FROM woken)"
)


def announce(
    where: Session | Connection,
    event_type: str,
    data: dict[str, Any],
    gallery_id: uuid.UUID | None,
) -> int | None:
    """Queue ``event_type`` for every active endpoint subscribed to it (and to the
    gallery), in the caller's transaction. Returns the event id, None if none listens."""
    payload = json.dumps(message(event_type, data))
    row = (
        _conn(where)
        .execute(
            _ANNOUNCE,
            {"type": event_type, "payload": payload, "gallery": gallery_id, "channel": CHANNEL},
        )
        .one()
    )
    return int(row[0]) if row[0] is not None else None


def announce_to(
    where: Session | Connection, webhook_id: uuid.UUID, event_type: str, data: dict[str, Any]
) -> int:
    """One event for one endpoint alone (``POST /v1/webhooks/{id}/test``)."""
    conn = _conn(where)
    payload = json.dumps(message(event_type, data))
    event_id = conn.execute(
        _INSERT_EVENT, {"type": event_type, "payload": payload, "gallery": None}
    ).scalar_one()
    conn.execute(_INSERT_DELIVERY, {"id": uuid.uuid4(), "webhook": webhook_id, "event": event_id})
    conn.execute(_NOTIFY)
    return int(event_id)


def _id(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


def decision_data(row: Verification) -> dict[str, Any]:
    """What a verify, search or liveness row tells a receiver: no probe, no names."""
    data: dict[str, Any] = {
        "verification_id": str(row.id),
        "request_id": row.request_id,
        "gallery_id": _id(row.gallery_id),
        "model_id": row.model_id,
    }
    if row.kind == "verify":
        data.update(
            subject_id=_id(row.subject_id),
            external_id=row.external_id,
            match=row.match,
            # As the API answers it (6 places): the receiver can compare the two.
            similarity=None if row.similarity is None else round(row.similarity, 6),
            threshold=row.threshold,
        )
    elif row.kind == "search":
        data.update(
            match=row.match,
            threshold=row.threshold,
            candidates=[
                {k: c.get(k) for k in ("subject_id", "external_id", "similarity")}
                for c in row.candidates or []
            ],
        )
    if row.liveness_decision is not None:
        signals = row.liveness_signals or {}
        data["liveness"] = {
            "decision": row.liveness_decision,
            "score": row.liveness_score,
            "mode": signals.get("mode"),
            "session_id": signals.get("session_id"),
            "reasons": signals.get("reasons"),
        }
    return data


_KIND_EVENTS = {
    "verify": VERIFICATION_COMPLETED,
    "search": SEARCH_COMPLETED,
    "liveness": LIVENESS_COMPLETED,
}


def announce_decision(session: Session, row: Verification) -> None:
    """The event of one verification-history row (verify, search or liveness)."""
    event_type = _KIND_EVENTS.get(row.kind)
    if event_type is not None:
        announce(session, event_type, decision_data(row), row.gallery_id)
