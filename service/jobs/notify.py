"""``LISTEN`` for new jobs on a dedicated autocommit connection, so a worker sleeps until
work arrives instead of polling hard (it still polls slowly, to catch missed wakes and
expired leases)."""

from __future__ import annotations

import psycopg

from service.jobs.queue import CHANNEL


def libpq_url(sqlalchemy_url: str) -> str:
    """``postgresql+psycopg://…`` → ``postgresql://…`` for a raw psycopg connection."""
    scheme, sep, rest = sqlalchemy_url.partition("://")
    return "postgresql" + sep + rest if "+" in scheme else sqlalchemy_url


class JobListener:
    def __init__(self, database_url: str) -> None:
        self._conn = psycopg.connect(libpq_url(database_url), autocommit=True)
        self._conn.execute(f"LISTEN {CHANNEL}")

    def wait(self, timeout_s: float) -> bool:
        """Block up to ``timeout_s``; True if a job was announced meanwhile."""
        woke = False
        for _ in self._conn.notifies(timeout=max(timeout_s, 0.0), stop_after=1):
            woke = True
        # Drain the rest without waiting: one wake is enough for a batch.
        for _ in self._conn.notifies(timeout=0.0):
            woke = True
        return woke

    def close(self) -> None:
        self._conn.close()
