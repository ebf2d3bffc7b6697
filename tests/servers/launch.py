"""Starting and stopping real server processes for the tests: free ports on 127.0.0.1,
a log file per process, waiting until a server answers, and failing with its log when
it does not (a server that cannot start is a failure here, never a skip)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

# SeaweedFS and Redis Cluster put a second listener on port + 10000.
MAX_PORT = 55535


def free_port(*, also_plus: int | None = None) -> int:
    """A port nothing listens on now (and, with ``also_plus``, nor on port + also_plus)."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port > MAX_PORT and also_plus:
            continue
        if also_plus and not _bindable(port + also_plus):
            continue
        return port
    raise RuntimeError("no free port pair on 127.0.0.1")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def require_binary(name: str, hint: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed ({hint}); tests/servers need it", pytrace=False)
    return found


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Server:
    """One server process, its log in ``log``; ``stop()`` ends it and what it started."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log = log
        self._log_file = log.open("ab")
        # A session of its own: stop() can end the server and any helper it forked.
        self.proc = subprocess.Popen(
            list(argv),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )

    def wait_until(self, ready: Callable[[], bool], *, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.fail(f"exited with {self.proc.returncode} before {what}")
            try:
                if ready():
                    return
            except Exception:  # noqa: BLE001, S110 - not up yet; the deadline decides
                pass
            time.sleep(0.1)
        self.fail(f"was not {what} after {timeout_s:.0f} s")

    def fail(self, why: str) -> None:
        self.stop()
        pytest.fail(f"{self.name} {why}; its log ({self.log}):\n{tail(self.log)}", pytrace=False)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            except ProcessLookupError:
                pass
        self._log_file.close()
