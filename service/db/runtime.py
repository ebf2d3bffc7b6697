"""What every entry point (serve, CLI commands, worker) needs first: a migrated database."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.core.settings import Settings
from service.db import migrate
from service.db.embedded import database_url
from service.db.session import make_engine, make_sessionmaker

log = logging.getLogger(__name__)


@contextmanager
def database(
    settings: Settings, *, apply_migrations: bool | None = None, supervise: bool = False
) -> Iterator[str]:
    """Yield the database URL; on the embedded default, pending migrations are applied
    (an external database is migrated only by ``faceprint migrate``), and ``supervise``
    restarts the embedded server if it dies."""
    with database_url(settings, supervise=supervise) as url:
        if apply_migrations if apply_migrations is not None else settings.embedded:
            migrate.upgrade(url)
        yield url


@contextmanager
def sessions(settings: Settings) -> Iterator[tuple[Engine, sessionmaker[Session]]]:
    with database(settings) as url:
        engine = make_engine(url, pool_size=2)
        try:
            yield engine, make_sessionmaker(engine)
        finally:
            engine.dispose()
