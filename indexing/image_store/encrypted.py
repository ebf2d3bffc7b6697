"""AES-256-GCM encryption at rest in front of any store.

Each object is ``MAGIC | version | key id | nonce | ciphertext+tag``. The key id is
the first 8 bytes of SHA-256 of the key, so a store can hold objects written under
several keys while keys rotate: the newest key encrypts, any known key decrypts.
The object's key (its name) is bound as associated data, so a ciphertext moved to
another name does not decrypt."""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from indexing.image_store.base import ImageStore, ImageStoreError

MAGIC = b"FPE"
VERSION = 1
NONCE_BYTES = 12
KEY_ID_BYTES = 8
_HEADER = struct.Struct(f">3sB{KEY_ID_BYTES}s{NONCE_BYTES}s")


class ImageDecryptionError(ImageStoreError):
    """The object is not ours, was written with an unknown key, or was tampered with."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"cannot decrypt stored image {key!r}: {reason}")
        self.key = key
        self.reason = reason


def key_id(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()[:KEY_ID_BYTES]


class EncryptedImageStore:
    def __init__(self, inner: ImageStore, key: bytes, *, old_keys: Sequence[bytes] = ()) -> None:
        for candidate in (key, *old_keys):
            if len(candidate) != 32:
                raise ValueError("AES-256-GCM needs 32-byte keys")
        self.inner = inner
        self._current_id = key_id(key)
        self._ciphers = {key_id(k): AESGCM(k) for k in (*old_keys, key)}

    def put(self, key: str, data: bytes) -> None:
        nonce = os.urandom(NONCE_BYTES)
        header = _HEADER.pack(MAGIC, VERSION, self._current_id, nonce)
        sealed = self._ciphers[self._current_id].encrypt(nonce, data, header + key.encode())
        self.inner.put(key, header + sealed)

    def get(self, key: str) -> bytes:
        blob = self.inner.get(key)
        if len(blob) < _HEADER.size + 16:
            raise ImageDecryptionError(key, "too short to be an encrypted object")
        magic, version, kid, nonce = _HEADER.unpack_from(blob)
        if magic != MAGIC or version != VERSION:
            raise ImageDecryptionError(key, "not an encrypted Faceprint object")
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise ImageDecryptionError(key, f"written with unknown key id {kid.hex()}")
        header = blob[: _HEADER.size]
        try:
            return cipher.decrypt(nonce, blob[_HEADER.size :], header + key.encode())
        except InvalidTag as exc:
            raise ImageDecryptionError(key, "authentication failed (tampered)") from exc

    def needs_rotation(self, key: str) -> bool:
        """True when the object was written under an older key."""
        blob = self.inner.get(key)
        return blob[3 + 1 : 3 + 1 + KEY_ID_BYTES] != self._current_id

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def health(self) -> str | None:
        return self.inner.health()

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def delete_prefix(self, prefix: str) -> int:
        return self.inner.delete_prefix(prefix)
