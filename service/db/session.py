"""Engine and session factory, built once per process."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

log = logging.getLogger(__name__)

AFTER_COMMIT = "after_commit_actions"
ON_ROLLBACK = "on_rollback_actions"


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
    )


def after_commit(session: Session, action: Callable[[], None]) -> None:
    """Run ``action`` once the session's transaction commits (and never if it rolls back).
    Used for side effects outside Postgres, such as erasing stored images, which must not
    happen for a transaction that is then undone."""
    session.info.setdefault(AFTER_COMMIT, []).append(action)


def on_rollback(session: Session, action: Callable[[], None]) -> None:
    """Run ``action`` if the session's transaction rolls back (a lost connection
    included), never once it commits: undoes a side effect written ahead of the
    transaction, such as an image stored before its row."""
    session.info.setdefault(ON_ROLLBACK, []).append(action)


def _run_after_commit(session: Session) -> None:
    session.info.pop(ON_ROLLBACK, None)
    actions = session.info.pop(AFTER_COMMIT, [])
    for action in actions:
        try:
            action()
        except Exception:  # noqa: BLE001 - the commit stands; report, do not raise
            log.exception("post-commit action failed")


def _drop_after_commit(session: Session) -> None:
    session.info.pop(AFTER_COMMIT, None)


def _run_on_rollback(session: Session, previous: SessionTransaction) -> None:
    # after_soft_rollback, not after_rollback: it fires also when the connection was
    # lost (no DBAPI rollback ran); only the outermost transaction counts.
    if previous.parent is not None:
        return
    for action in session.info.pop(ON_ROLLBACK, []):
        try:
            action()
        except Exception:  # noqa: BLE001 - the rollback stands; report, do not raise
            log.exception("rollback clean-up failed")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    factory = sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)
    event.listen(factory, "after_commit", _run_after_commit)
    event.listen(factory, "after_rollback", _drop_after_commit)
    event.listen(factory, "after_soft_rollback", _run_on_rollback)
    return factory
