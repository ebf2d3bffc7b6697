"""Keeping the analytics current and the history bounded: refresh the daily aggregate,
open the analyst role for a login, prune old history while keeping its aggregates."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from psycopg import sql
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

ANALYST_ROLE = "faceprint_analyst"

# The daily aggregate of one day's history rows, in the columns of verification_days
# (and of analytics.daily).
_DAY_AGGREGATE = """
    SELECT (created_at AT TIME ZONE 'UTC')::date, gallery_id, kind, model_id,
           principal_type, principal_id, count(*), count(*) FILTER (WHERE match),
           count(*) FILTER (WHERE liveness_decision = 'live'), count(liveness_decision),
           count(label), avg(similarity), avg(latency_ms),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms),
           percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)
    FROM verifications
    WHERE created_at >= CAST(:day AS timestamp) AT TIME ZONE 'UTC'
      AND created_at < (CAST(:day AS timestamp) + interval '1 day') AT TIME ZONE 'UTC'
    GROUP BY 1, 2, 3, 4, 5, 6
"""


def refresh_daily(engine: Engine) -> None:
    """Recompute analytics.daily without blocking its readers (CONCURRENTLY needs its
    unique index, made by the migration)."""
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(
            text("REFRESH MATERIALIZED VIEW CONCURRENTLY analytics.daily")
        )


def analyst_dsn(engine: Engine, password: str) -> str:
    """Let the analyst role log in with ``password`` and return its libpq DSN on the
    service's own database (same host, port or socket). The service's database user
    needs CREATEROLE (the embedded server's does)."""
    with engine.begin() as conn:
        exists = conn.execute(
            text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": ANALYST_ROLE}
        ).scalar()
        if not exists:
            raise RuntimeError(
                f"role {ANALYST_ROLE} does not exist: migrate with a database user that "
                "has CREATEROLE, or have a superuser run migration 0006's role statements"
            )
        raw = conn.connection.driver_connection
        assert raw is not None
        # Utility statements take no bind parameters: the password goes in as a quoted
        # literal, composed by psycopg.
        raw.execute(
            sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(ANALYST_ROLE), sql.Literal(password)
            )
        )
    url = make_url(engine.url.render_as_string(hide_password=False)).set(
        drivername="postgresql", username=ANALYST_ROLE, password=password
    )
    return url.render_as_string(hide_password=False)


def prunable_days(session: Session, older_than: date) -> list[date]:
    """The UTC days before ``older_than`` that still hold history rows."""
    return list(
        session.execute(
            text(
                "SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date FROM verifications"
                " WHERE created_at < CAST(:cut AS timestamp) AT TIME ZONE 'UTC' ORDER BY 1"
            ),
            {"cut": older_than},
        ).scalars()
    )


def prune_day(session: Session, day: date) -> int:
    """Move one day of history into its aggregates: insert them, delete the rows, in
    the caller's one transaction. A day is pruned whole or not at all, so a prune that
    stops half way resumes with the next day and counts nothing twice."""
    session.execute(
        text(
            "INSERT INTO verification_days (day, gallery_id, kind, model_id, principal_type,"
            " principal_id, decisions, matches, liveness_live, liveness_checked, labelled,"
            " mean_similarity, mean_latency_ms, p50_latency_ms, p95_latency_ms)" + _DAY_AGGREGATE
        ),
        {"day": day},
    )
    deleted = session.execute(
        text(
            "DELETE FROM verifications"
            " WHERE created_at >= CAST(:day AS timestamp) AT TIME ZONE 'UTC'"
            " AND created_at < (CAST(:day AS timestamp) + interval '1 day') AT TIME ZONE 'UTC'"
        ),
        {"day": day},
    )
    return int(deleted.rowcount or 0)


def prune(
    make_session: Callable[[], Session],
    older_than: date,
    *,
    on_day: Callable[[date, int, int], None] | None = None,
) -> int:
    """Prune every day before ``older_than``, one transaction a day; ``on_day(day,
    rows, days_total)`` after each. Returns the rows deleted."""
    with make_session() as session:
        days = prunable_days(session, older_than)
    total = 0
    for day in days:
        with make_session() as session:
            rows = prune_day(session, day)
            session.commit()
        total += rows
        if on_day is not None:
            on_day(day, rows, len(days))
    return total
