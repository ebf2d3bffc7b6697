"""Logging in and staying logged in: the service functions behind ``/v1/auth/*`` and the
``verify_access_token`` hook that :func:`service.http.deps.get_principal` calls."""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from service.core.datadir import Secrets
from service.core.principal import Principal, Role
from service.core.problems import Unauthorized
from service.core.settings import Settings
from service.domain.audit import record
from service.domain.auth import tokens, users
from service.domain.auth.passwords import Passwords

log = logging.getLogger(__name__)

BAD_CREDENTIALS = "the email or password is wrong, or the account is disabled"
BAD_REFRESH = "the refresh token is unknown, expired, revoked or already used"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str


def _email_ref(email: str) -> str:
    """A log-safe handle on a typed email: people paste passwords into the email field."""
    return hashlib.sha256(users.normalise_email(email).encode()).hexdigest()[:12]


class AuthService:
    """Built once in ``lifespan``: the password hasher (and its dummy hash) and the JWT keys."""

    def __init__(
        self, *, passwords: Passwords, access_tokens: tokens.AccessTokens, refresh_ttl_s: int
    ) -> None:
        self.passwords = passwords
        self.access_tokens = access_tokens
        self.refresh_ttl_s = refresh_ttl_s

    def _pair(
        self, session: Session, user_id: uuid.UUID, role: Role, family: uuid.UUID | None
    ) -> TokenPair:
        access = self.access_tokens.issue(user_id=user_id, role=role)
        refresh = tokens.issue_refresh_token(
            session, user_id=user_id, ttl_s=self.refresh_ttl_s, family_id=family
        )
        return TokenPair(access.token, access.expires_in, refresh)

    def login(self, session: Session, *, email: str, password: str) -> TokenPair:
        user = users.authenticate(session, passwords=self.passwords, email=email, password=password)
        if user is None:
            log.info("login refused", extra={"email_ref": _email_ref(email)})
            raise Unauthorized(BAD_CREDENTIALS)
        actor = tokens.user_principal(user.id, user.role)
        record(session, actor=actor, action="auth.login", target_type="user", target_id=actor.id)
        log.info("login", extra={"user_id": actor.id})
        return self._pair(session, user.id, user.role, family=None)

    def refresh(self, session: Session, *, refresh_token: str) -> TokenPair:
        presented = tokens.consume_refresh_token(session, refresh_token)
        row = presented.row
        if row is None:
            raise Unauthorized(BAD_REFRESH)
        if presented.reused:
            revoked = tokens.revoke_family(session, row.family_id)
            record(
                session,
                # The audit row keeps only kind and id; the role here is not consulted.
                actor=Principal(kind="user", id=str(row.user_id), role=Role.client),
                action="auth.refresh_reuse",
                target_type="refresh_family",
                target_id=str(row.family_id),
                details={"revoked": revoked},
            )
            # The request fails, but the revocation must stand: commit before raising.
            session.commit()
            log.warning(
                "refresh token reused; family revoked",
                extra={"user_id": str(row.user_id), "family_id": str(row.family_id)},
            )
            raise Unauthorized(BAD_REFRESH)
        user = users.active_user(session, row.user_id)
        if user is None:
            raise Unauthorized(BAD_REFRESH)
        return self._pair(session, user.id, user.role, family=row.family_id)

    def verify_access_token(self, session: Session, token: str) -> Principal | None:
        """The caller behind a bearer token, or None (a 401). The role is the user's role
        now, not the one in the token: a demotion takes effect on the next request."""
        claims = self.access_tokens.decode(token)
        if claims is None:
            return None
        user = users.active_user(session, claims.user_id)
        if user is None:
            return None
        return tokens.user_principal(user.id, user.role)


def build_auth(settings: Settings, secrets: Secrets) -> AuthService:
    return AuthService(
        passwords=Passwords(),
        access_tokens=tokens.AccessTokens(
            secret=secrets.jwt_secret,
            ttl_s=settings.access_token_ttl_s,
            previous_secrets=[s.get_secret_value() for s in settings.jwt_previous_secrets],
        ),
        refresh_ttl_s=settings.refresh_token_ttl_s,
    )
