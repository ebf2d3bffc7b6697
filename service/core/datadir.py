"""The data directory: where the embedded database, images and generated secrets live."""

from __future__ import annotations

import base64
import fcntl
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from service.core.settings import Settings


class DataDirInUse(RuntimeError):
    """Another ``faceprint serve`` already owns this data directory."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"data directory {path} is in use by another `faceprint serve`; "
            "stop it first or set FACEPRINT_DATA_DIR to another directory"
        )
        self.path = path


@dataclass(frozen=True)
class Secrets:
    jwt_secret: str
    encryption_key: bytes


def ensure_data_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    # Postgres runs as its own system user when we are root; it must be able to reach pgdata.
    path.chmod(0o755)
    return path


def _read_or_create_secret(path: Path, make: bytes) -> bytes:
    if path.exists():
        return path.read_bytes().strip()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(make)
    return make


def load_secrets(settings: Settings) -> Secrets:
    """Secrets from settings, or generated once into the data directory (mode 0600)."""
    secret_dir = ensure_data_dir(settings.data_dir) / "secrets"
    secret_dir.mkdir(mode=0o700, exist_ok=True)
    if settings.jwt_secret is not None:
        jwt_secret = settings.jwt_secret.get_secret_value()
    else:
        jwt_secret = _read_or_create_secret(
            secret_dir / "jwt_secret", secrets.token_urlsafe(48).encode()
        ).decode()
    if settings.encryption_key is not None:
        raw = settings.encryption_key.get_secret_value().encode()
    else:
        raw = _read_or_create_secret(
            secret_dir / "encryption_key", base64.b64encode(secrets.token_bytes(32))
        )
    key = base64.b64decode(raw)
    if len(key) != 32:
        raise ValueError("FACEPRINT_ENCRYPTION_KEY must be 32 bytes, base64-encoded")
    return Secrets(jwt_secret=jwt_secret, encryption_key=key)


def write_private(settings: Settings, name: str, content: str) -> Path:
    """Write ``content`` to a fresh file only this user can read (0600, in the 0700
    secrets directory), replacing an older one; for handing a secret to child
    processes without putting it in their environment."""
    secret_dir = ensure_data_dir(settings.data_dir) / "secrets"
    secret_dir.mkdir(mode=0o700, exist_ok=True)
    path = secret_dir / name
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
    return path


class ServeLock:
    """An exclusive lock that one ``faceprint serve`` holds on its data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.path = ensure_data_dir(data_dir) / "serve.lock"
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        handle = open(self.path, "a+")  # noqa: SIM115 - held for the life of the server
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.close()
            raise DataDirInUse(self.path.parent) from exc
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def __enter__(self) -> ServeLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def analyst_password(settings: Settings) -> str:
    """The analyst role's password, generated once into the data directory (mode 0600)
    so that ``faceprint analytics url`` prints the same DSN every time."""
    secret_dir = ensure_data_dir(settings.data_dir) / "secrets"
    secret_dir.mkdir(mode=0o700, exist_ok=True)
    return _read_or_create_secret(
        secret_dir / "analyst_password", secrets.token_urlsafe(24).encode()
    ).decode()


def served_here(data_dir: Path) -> bool:
    """True while a ``faceprint serve`` holds this data directory's lock."""
    path = Path(data_dir) / "serve.lock"
    if not path.exists():
        return False
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def served_elsewhere(data_dir: Path) -> list[tuple[Path, int]]:
    """(data dir, pid) of every ``faceprint serve`` this user runs on another data
    directory: the processes holding a ``serve.lock`` open. A command on an empty data
    dir while one of them runs is most likely meant for it."""
    import psutil

    own = (Path(data_dir) / "serve.lock").resolve()
    found: list[tuple[Path, int]] = []
    for process in psutil.process_iter(["pid"]):
        try:
            files = process.open_files()
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        for opened in files:
            path = Path(opened.path)
            if path.name == "serve.lock" and path.resolve() != own:
                found.append((path.parent, process.pid))
    return sorted(set(found))
