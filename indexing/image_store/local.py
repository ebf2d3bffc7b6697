"""Originals in a local directory (the embedded default: ``<data dir>/images``)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from indexing.files import atomic_write
from indexing.image_store.base import ImageNotFound, InvalidImageKey, validate_key


class LocalImageStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str, *, prefix: bool = False) -> Path:
        validate_key(key, prefix=prefix)
        path = (self.root / key).resolve()
        # validate_key already refuses "..", this guards against symlinks inside the root.
        if path != self.root and self.root not in path.parents:
            raise InvalidImageKey(key, "resolves outside the store")
        return path

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data)

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise ImageNotFound(key) from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def health(self) -> str | None:
        if not self.root.is_dir():
            return f"{self.root} is missing"
        if not os.access(self.root, os.W_OK | os.X_OK):
            return f"{self.root} is not writable"
        return None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        if prefix.endswith("/"):
            directory = self._path(prefix, prefix=True)
            if not directory.is_dir():
                return 0
            count = sum(1 for p in directory.rglob("*") if p.is_file())
            shutil.rmtree(directory)
            return count
        # A partial name: match files and folders in the parent that start with it.
        head, _, stem = prefix.rpartition("/")
        parent = self._path(head, prefix=True) if head else self.root
        if stem:
            validate_key(prefix, prefix=True)
        if not parent.is_dir():
            return 0
        count = 0
        for entry in parent.iterdir():
            # Keys never start with a dot; dot files are atomic_write's temporaries.
            if not entry.name.startswith(stem) or entry.name.startswith("."):
                continue
            if entry.is_dir():
                count += sum(1 for p in entry.rglob("*") if p.is_file())
                shutil.rmtree(entry)
            else:
                entry.unlink(missing_ok=True)
                count += 1
        return count
