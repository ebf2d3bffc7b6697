"""Password hashing with argon2id (argon2-cffi's RFC 9106 defaults).

Login must take the same time whether or not the email exists, so an unknown email
is checked against a dummy hash made once at construction (see :meth:`verify_absent`).
"""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024


class WeakPassword(ValueError):
    """The password is too short or too long to accept."""


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    # argon2 hashes any length, but an unbounded input is free CPU for an attacker.
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPassword(f"a password may have at most {MAX_PASSWORD_LENGTH} characters")


class Passwords:
    """Hash and verify passwords; one instance per process (the dummy hash costs one hash)."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        check_password_policy(password)
        return self._hasher.hash(password)

    def rehash(self, password: str) -> str:
        """A fresh hash of a password already accepted at login (no policy check: a policy
        tightened later must not lock out a user whose hash is being upgraded)."""
        return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        if len(password) > MAX_PASSWORD_LENGTH:
            return False
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def verify_absent(self, password: str) -> None:
        """Spend the time a real check would, for an account that does not exist."""
        self.verify(self._dummy_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)
