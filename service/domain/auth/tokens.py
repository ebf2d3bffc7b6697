"""Access tokens (JWT, HS256) and refresh tokens (random, stored hashed, rotated).

Access tokens are short-lived and stateless: the signature, ``exp`` and the user's row
(which must still exist and be enabled) decide. The algorithm is pinned to HS256 on
decode, so ``alg=none`` and algorithm-confusion tokens never verify. The ``kid``
header names the signing key (a hash of it, never the key), so a new key can be
introduced while tokens signed with the previous one stay valid until they expire.

Refresh tokens are 256 random bits shown once and stored as SHA-256 hashes (as for
API keys, a slow hash buys nothing at that entropy). Each login starts a family;
every refresh marks the presented token used and issues its successor in the same
family. Presenting a used token means it was copied: the whole family is revoked.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.core.principal import Principal, Role
from service.db.models import RefreshToken

ALGORITHM = "HS256"
ISSUER = "faceprint"
REFRESH_PREFIX = "fprt_"
REQUIRED_CLAIMS = ["exp", "iat", "sub", "role", "jti", "iss"]


def key_id(secret: str) -> str:
    """A public name for a signing key: a truncated hash that does not reveal it."""
    return hashlib.sha256(b"faceprint-jwt-kid:" + secret.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    role: Role
    jti: str
    expires_at: datetime


@dataclass(frozen=True)
class IssuedAccessToken:
    token: str
    expires_in: int


class AccessTokens:
    """Signs with the current key; verifies with the current key or any previous one."""

    def __init__(self, *, secret: str, ttl_s: int, previous_secrets: Sequence[str] = ()) -> None:
        if ttl_s <= 0:
            raise ValueError("the access token TTL must be positive")
        self._kid = key_id(secret)
        self._secret = secret
        self._keys = {key_id(s): s for s in previous_secrets} | {self._kid: secret}
        self._ttl_s = ttl_s

    def issue(self, *, user_id: uuid.UUID, role: Role) -> IssuedAccessToken:
        now = datetime.now(UTC)
        claims = {
            "iss": ISSUER,
            "sub": str(user_id),
            "role": role.value,
            "iat": now,
            "exp": now + timedelta(seconds=self._ttl_s),
            "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(claims, self._secret, algorithm=ALGORITHM, headers={"kid": self._kid})
        return IssuedAccessToken(token=token, expires_in=self._ttl_s)

    def decode(self, token: str) -> AccessClaims | None:
        """The claims of a genuine, unexpired token; None for anything else."""
        try:
            header = jwt.get_unverified_header(token)
            secret = self._keys.get(str(header.get("kid")))
            if secret is None or header.get("alg") != ALGORITHM:
                return None
            claims = jwt.decode(
                token,
                secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": REQUIRED_CLAIMS},
            )
            return AccessClaims(
                user_id=uuid.UUID(str(claims["sub"])),
                role=Role(claims["role"]),
                jti=str(claims["jti"]),
                expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
            )
        except (jwt.InvalidTokenError, ValueError, TypeError):
            return None


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_refresh_token(
    session: Session, *, user_id: uuid.UUID, ttl_s: int, family_id: uuid.UUID | None = None
) -> str:
    """A new refresh token (plaintext, shown once); a new family unless one is given."""
    plaintext = REFRESH_PREFIX + secrets.token_urlsafe(32)
    session.add(
        RefreshToken(
            user_id=user_id,
            family_id=family_id or uuid.uuid4(),
            token_hash=hash_refresh_token(plaintext),
            expires_at=datetime.now(UTC) + timedelta(seconds=ttl_s),
        )
    )
    session.flush()
    return plaintext


@dataclass(frozen=True)
class Presented:
    """What a presented refresh token turned out to be."""

    row: RefreshToken | None
    reused: bool = False

    @property
    def usable(self) -> bool:
        return self.row is not None and not self.reused


def consume_refresh_token(session: Session, presented: str) -> Presented:
    """Mark the presented token used, if it is usable. Locks its row, so two concurrent
    refreshes with one token cannot both succeed: the second sees it used (reuse)."""
    if not presented.startswith(REFRESH_PREFIX) or len(presented) > 200:
        return Presented(row=None)
    row = session.scalar(
        select(RefreshToken)
        .where(RefreshToken.token_hash == hash_refresh_token(presented))
        .with_for_update()
    )
    now = datetime.now(UTC)
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return Presented(row=None)
    if row.used_at is not None:
        return Presented(row=row, reused=True)
    row.used_at = now
    session.flush()
    return Presented(row=row)


def revoke_family(session: Session, family_id: uuid.UUID) -> int:
    result = session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    return int(result.rowcount or 0)


def revoke_user_tokens(session: Session, user_id: uuid.UUID) -> int:
    """Revoke every refresh token of a user (on disable, or a password change)."""
    result = session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    return int(result.rowcount or 0)


def user_principal(user_id: uuid.UUID, role: Role) -> Principal:
    """Admins and operators see every gallery. A client acts only on galleries it is
    granted, and users carry no grants (only API keys do), so a client user is granted
    none: deny by default rather than everything."""
    galleries = frozenset() if role is Role.client else None
    return Principal(kind="user", id=str(user_id), role=role, gallery_ids=galleries)
