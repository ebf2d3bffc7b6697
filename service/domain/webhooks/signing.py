"""Secrets and signatures exactly as the Standard Webhooks specification has them.

A secret is ``whsec_`` + base64 of 32 random bytes; the HMAC key is the decoded bytes.
The signature of a message is ``v1,`` + base64(HMAC-SHA256(key, "{id}.{ts}.{body}")),
and several (space-separated) are sent while a rotated secret is still valid.
Secrets are stored encrypted (AES-256-GCM with the data-encryption key): delivery needs
them in the clear, so a one-way hash would not do."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "whsec_"
_AAD = b"faceprint-webhook-secret"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key_bytes(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of the message."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(secrets_: list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    return " ".join(sign(s, msg_id, timestamp, body) for s in secrets_)


def encrypt(key: bytes, secret: str) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(key).encrypt(nonce, secret.encode(), _AAD)


def decrypt(key: bytes, blob: bytes) -> str:
    return AESGCM(key).decrypt(blob[:12], blob[12:], _AAD).decode()
