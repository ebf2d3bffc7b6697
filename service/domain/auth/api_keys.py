"""API keys: random, shown once, stored as a SHA-256 hash and looked up by a public prefix.

The keys carry 256 bits of entropy, so a fast hash is the right tool here (a slow
password hash would only add latency to every request).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.core.principal import Principal, Role
from service.db.models import ApiKey

KEY_PREFIX = "fp_"
# Set on the session when authentication wrote something that must be committed.
AUTH_WROTE = "auth_wrote"


@dataclass(frozen=True)
class NewKey:
    row: ApiKey
    plaintext: str


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _split(presented: str) -> tuple[str, str] | None:
    if not presented.startswith(KEY_PREFIX):
        return None
    body = presented[len(KEY_PREFIX) :]
    prefix, sep, _ = body.partition("_")
    if not sep or not prefix:
        return None
    return prefix, presented


def create_api_key(
    session: Session,
    *,
    name: str,
    role: Role,
    gallery_ids: list[uuid.UUID] | None = None,
    created_by: str | None = None,
    rate_limit: int | None = None,
) -> NewKey:
    prefix = secrets.token_hex(6)
    plaintext = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey(
        name=name,
        prefix=prefix,
        key_hash=hash_key(plaintext),
        role=role.value,
        gallery_ids=gallery_ids,
        created_by=created_by,
        rate_limit_per_minute=rate_limit,
    )
    session.add(row)
    session.flush()
    return NewKey(row=row, plaintext=plaintext)


def authenticate_api_key(session: Session, presented: str) -> Principal | None:
    """The principal for a presented key, or None when it is unknown, wrong or revoked."""
    parts = _split(presented)
    if parts is None:
        return None
    prefix, full = parts
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.key_hash, hash_key(full)):
        return None
    now = datetime.now(UTC)
    # Coarse last_used_at: one write a minute per key at most, not one per request.
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
        session.execute(update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now))
        session.info[AUTH_WROTE] = True
    return Principal(
        kind="api_key",
        id=str(row.id),
        role=Role(row.role),
        gallery_ids=frozenset(row.gallery_ids) if row.gallery_ids is not None else None,
        rate_limit=row.rate_limit_per_minute,
    )
