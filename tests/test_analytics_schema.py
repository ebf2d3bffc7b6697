"""The analytics schema and its read-only role, as migration 0006 makes them."""

from __future__ import annotations

import psycopg
import pytest
from alembic import command
from sqlalchemy import create_engine, text

from service.db import migrate


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _as_analyst(db_url: str, query: str) -> list[tuple]:
    """Run ``query`` with exactly the analyst role's privileges."""
    with psycopg.connect(_libpq(db_url), autocommit=True) as conn:
        conn.execute("SET ROLE faceprint_analyst")
        return conn.execute(query).fetchall()  # type: ignore[arg-type]


def test_the_analyst_reads_the_views(db_url: str) -> None:
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO verifications (id, kind, principal_type, principal_id, match,"
                " similarity, threshold) VALUES (gen_random_uuid(), 'verify', 'api_key',"
                " 'k1', true, 0.9, 0.5)"
            )
        )
        conn.execute(text("REFRESH MATERIALIZED VIEW analytics.daily"))
    engine.dispose()
    rows = _as_analyst(db_url, "SELECT kind, decision, similarity FROM analytics.decisions")
    assert rows == [("verify", "match", 0.9)]
    assert _as_analyst(db_url, "SELECT sum(decisions)::int FROM analytics.daily") == [(1,)]
    assert _as_analyst(db_url, "SELECT count(*) FROM analytics.galleries") == [(0,)]
    assert _as_analyst(db_url, "SELECT count(*) FROM analytics.models") == [(0,)]


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM verifications",
        "SELECT embedding FROM templates",
        "SELECT image_key FROM faces",
        "SELECT key_hash FROM api_keys",
        "SELECT * FROM audit_log",
        "INSERT INTO analytics.decisions (id, kind) VALUES (gen_random_uuid(), 'verify')",
        "DELETE FROM analytics.decisions",
        "REFRESH MATERIALIZED VIEW analytics.daily",
        "CREATE TABLE analytics.mine (x int)",
    ],
)
def test_the_analyst_touches_nothing_else(db_url: str, query: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _as_analyst(db_url, query)


def test_the_views_expose_no_image_or_embedding(db_url: str) -> None:
    engine = create_engine(db_url)
    with engine.connect() as conn:
        columns = set(
            conn.execute(
                text(
                    "SELECT column_name FROM information_schema.columns"
                    " WHERE table_schema = 'analytics'"
                )
            ).scalars()
        )
    engine.dispose()
    assert "similarity" in columns and "label" in columns
    assert not columns & {"embedding", "probe_image_key", "image_key", "key_hash", "secret"}


def test_downgrade_removes_the_schema_and_upgrade_restores_it(empty_db_url: str) -> None:
    migrate.upgrade(empty_db_url)
    command.downgrade(migrate.alembic_config(empty_db_url), "0005")
    engine = create_engine(empty_db_url)
    try:
        with engine.connect() as conn:
            schemas = set(conn.execute(text("SELECT nspname FROM pg_namespace")).scalars())
            assert "analytics" not in schemas
            columns = set(
                conn.execute(
                    text(
                        "SELECT column_name FROM information_schema.columns"
                        " WHERE table_name = 'verifications'"
                    )
                ).scalars()
            )
            assert "label" not in columns
    finally:
        engine.dispose()
    migrate.upgrade(empty_db_url)
    assert _as_analyst(empty_db_url, "SELECT count(*) FROM analytics.decisions") == [(0,)]
