"""Readiness: the database answers, its schema is at the code's revision, and every
component probe (index, models) says ready."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sqlalchemy import Engine, text

from service.core.problems import Unavailable
from service.db.migrate import current_revision, head_revision


class NotReady(Unavailable):
    slug, title = "not-ready", "Not ready"


def check(engine: Engine, probes: Mapping[str, Callable[[], str | None]]) -> dict[str, str]:
    """Every check's state; raises :class:`NotReady` (with ``checks``) if one fails."""
    checks: dict[str, str] = {}
    reasons: list[str] = []
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        current = current_revision(engine)
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["database"] = "unreachable"
        reasons.append(f"database unreachable: {type(exc).__name__}")
    else:
        head = head_revision()
        if current == head:
            checks["migrations"] = "ok"
        else:
            checks["migrations"] = "pending"
            reasons.append(f"schema at {current}, code expects {head}: run `faceprint migrate`")
    for name, probe in probes.items():
        try:
            problem = probe()
        except Exception as exc:  # noqa: BLE001 - a probe that cannot run is failing
            problem = f"{type(exc).__name__}: {exc}"[:200]
        checks[name] = "ok" if problem is None else "failing"
        if problem is not None:
            reasons.append(f"{name}: {problem}")
    if reasons:
        raise NotReady("; ".join(reasons), checks=checks)
    return checks
