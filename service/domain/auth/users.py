"""People who log in with an email and a password: creating them, finding them, and
checking their credentials. The CLI and the login route call these functions."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.core.principal import Principal, Role
from service.core.problems import Conflict, NotFound, Unprocessable
from service.db.models import User
from service.domain.audit import record
from service.domain.auth.passwords import Passwords, WeakPassword

# Deliberately loose: the address is a login name, not something we send mail to.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
MAX_EMAIL_LENGTH = 320


class InvalidEmail(Unprocessable):
    slug, title = "invalid-email", "Not an email address"


class WeakPasswordProblem(Unprocessable):
    slug, title = "weak-password", "Password not accepted"


@dataclass(frozen=True)
class UserPublic:
    id: uuid.UUID
    email: str
    role: Role
    disabled: bool


def normalise_email(email: str) -> str:
    return email.strip().lower()


def _public(row: User) -> UserPublic:
    return UserPublic(id=row.id, email=row.email, role=Role(row.role), disabled=row.disabled)


def create_user(
    session: Session,
    *,
    passwords: Passwords,
    email: str,
    password: str,
    role: Role,
    actor: Principal | None,
) -> UserPublic:
    # Stored lower-cased so that the unique index on email also makes it case-insensitive.
    email = normalise_email(email)
    if len(email) > MAX_EMAIL_LENGTH or not _EMAIL.match(email):
        raise InvalidEmail(f"{email!r} is not an email address")
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict(f"a user with email {email} already exists")
    try:
        password_hash = passwords.hash(password)
    except WeakPassword as exc:
        raise WeakPasswordProblem(str(exc)) from exc
    row = User(email=email, password_hash=password_hash, role=role.value, disabled=False)
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent create won the race for this email
        raise Conflict(f"a user with email {email} already exists") from exc
    record(
        session,
        actor=actor,
        action="user.create",
        target_type="user",
        target_id=str(row.id),
        details={"email": email, "role": role.value},
    )
    return _public(row)


def set_disabled(
    session: Session, *, email: str, disabled: bool, actor: Principal | None
) -> UserPublic:
    row = session.scalar(select(User).where(User.email == normalise_email(email)))
    if row is None:
        raise NotFound(f"no user with email {normalise_email(email)}")
    if row.disabled != disabled:
        row.disabled = disabled
        record(
            session,
            actor=actor,
            action="user.disable" if disabled else "user.enable",
            target_type="user",
            target_id=str(row.id),
        )
    return _public(row)


def authenticate(
    session: Session, *, passwords: Passwords, email: str, password: str
) -> UserPublic | None:
    """The user these credentials belong to, or None. Unknown emails, wrong passwords and
    disabled accounts all cost one argon2 verification, so timing tells them apart no
    better than the answer does (which is the same None for all three)."""
    row = session.scalar(select(User).where(User.email == normalise_email(email)))
    if row is None:
        passwords.verify_absent(password)
        return None
    if not passwords.verify(row.password_hash, password):
        return None
    if row.disabled:
        return None
    if passwords.needs_rehash(row.password_hash):
        # Parameters were raised since this hash was made; upgrade it while we hold the password.
        row.password_hash = passwords.rehash(password)
    return _public(row)


def active_user(session: Session, user_id: uuid.UUID) -> UserPublic | None:
    """The user, if it exists and is not disabled."""
    row = session.get(User, user_id)
    if row is None or row.disabled:
        return None
    return _public(row)
