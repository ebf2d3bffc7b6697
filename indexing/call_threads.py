"""How many threads the runtimes may use for the pipeline call in progress.

A service answering one request at a time leaves a core idle; one answering several
has none to spare. The pipeline counts its calls in flight and, for a call that starts
alone, lets the runtimes that can split one inference across threads (onnxruntime, the
TFLite detector) use ``idle_threads``; otherwise one. Measured on the 2-core machine:
BlazeFace 3.5 → 2.1 ms and the dlib ONNX embedding 3.6 → 2.2 ms with two threads, for
~15% more CPU, which a lone call has to spare and a busy service does not.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_THREADS: ContextVar[int] = ContextVar("faceprint_call_threads", default=1)


def call_threads() -> int:
    """Threads the current pipeline call may use (1 outside any call)."""
    return _THREADS.get()


class CallGauge:
    """Counts pipeline calls in flight in this process."""

    def __init__(self, idle_threads: int = 1) -> None:
        if idle_threads < 1:
            raise ValueError("idle_threads must be at least 1")
        self.idle_threads = idle_threads
        self._in_flight = 0
        self._lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @contextmanager
    def call(self) -> Iterator[int]:
        """A pipeline call: yields (and sets for the runtimes) the threads it may use."""
        with self._lock:
            self._in_flight += 1
            alone = self._in_flight == 1
        threads = self.idle_threads if alone else 1
        token = _THREADS.set(threads)
        try:
            yield threads
        finally:
            _THREADS.reset(token)
            with self._lock:
                self._in_flight -= 1
