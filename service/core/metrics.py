"""What ``/metrics`` exports: this process's registry, or, when ``faceprint serve`` runs
several worker processes behind one port, the sum over all of them.

A scrape reaches whichever process accepts the connection. With per-process counters
each scrape would see one process's share, and counters would seem to jump and reset
between scrapes; Prometheus' multiprocess mode keeps every process's values in files
in one directory, which any process can read and sum.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def exported_registry() -> CollectorRegistry:
    if os.environ.get(MULTIPROCESS_DIR_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return registry
    return REGISTRY


@contextmanager
def shared_between_processes() -> Iterator[None]:
    """Make the worker processes started inside this block write their metrics to one
    fresh directory (they read the variable when they import prometheus_client), and
    remove it afterwards, so that no count survives into the next start.

    A directory the operator set already (a process manager's own) is used as it is.
    """
    if os.environ.get(MULTIPROCESS_DIR_ENV):
        yield
        return
    path = tempfile.mkdtemp(prefix="faceprint-metrics-")
    os.environ[MULTIPROCESS_DIR_ENV] = path
    try:
        yield
    finally:
        os.environ.pop(MULTIPROCESS_DIR_ENV, None)
        shutil.rmtree(path, ignore_errors=True)
