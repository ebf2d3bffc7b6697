"""The image store protocol and its typed errors.

Keys are relative, slash-separated names such as ``<gallery>/<subject>/<face>.jpg``;
every backend validates them the same way so that a key that works on the local
directory also works on S3 and can never escape the store.
"""

from __future__ import annotations

import re
from typing import Protocol, runtime_checkable

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
MAX_KEY_LENGTH = 512


class ImageStoreError(Exception):
    """Base of the store's errors."""


class InvalidImageKey(ImageStoreError, ValueError):
    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"invalid image key {key!r}: {reason}")
        self.key = key


class ImageNotFound(ImageStoreError, KeyError):
    def __init__(self, key: str) -> None:
        super().__init__(f"no stored image under {key!r}")
        self.key = key

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def validate_key(key: str, *, prefix: bool = False) -> str:
    """Return ``key`` if it is a safe relative name, else raise :class:`InvalidImageKey`.

    A prefix may end with ``/``; segments may not be empty, ``.`` or ``..`` and may
    only use letters, digits, ``.``, ``_`` and ``-`` (so no separators of any OS,
    no NUL, no leading dot files)."""
    if not key:
        raise InvalidImageKey(key, "empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidImageKey(key, f"longer than {MAX_KEY_LENGTH} characters")
    body = key[:-1] if prefix and key.endswith("/") else key
    for segment in body.split("/"):
        if not _SEGMENT.match(segment):
            raise InvalidImageKey(key, f"segment {segment!r} is not allowed")
    return key


@runtime_checkable
class ImageStore(Protocol):
    """Bytes by key. Writes are atomic: a reader sees the old object or the new one."""

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes:
        """The stored bytes; :class:`ImageNotFound` if there are none."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove one object; deleting a missing key is not an error."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object whose key starts with ``prefix``; returns how many."""
        ...

    def health(self) -> str | None:
        """None when the store can take writes, else why not (for readiness checks)."""
        ...
