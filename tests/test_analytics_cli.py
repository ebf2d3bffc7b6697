"""``faceprint analytics …`` and ``faceprint history prune`` on a real database."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator

import psycopg
import pytest
from click.testing import Result
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

Invoke = Callable[..., Result]

# 40 days of history, 10 decisions a day (4 of them matches), 5 of those days 60+ days old.
SEED = """
WITH noon AS (SELECT (current_date::timestamp + interval '12 hours') AT TIME ZONE 'UTC' AS noon)
INSERT INTO verifications (id, created_at, kind, principal_type, principal_id, gallery_id,
                           model_id, similarity, threshold, match, latency_ms)
SELECT gen_random_uuid(), noon - make_interval(days => d) - make_interval(mins => i),
       'verify', 'api_key', 'k1', '00000000-0000-0000-0000-000000000001'::uuid, 'arcface',
       0.3 + i * 0.05, 0.5, i >= 6, 10 + i
FROM generate_series(0, 34) d, generate_series(0, 9) i, noon AS n(noon)
UNION ALL
SELECT gen_random_uuid(), noon - make_interval(days => 60 + d) - make_interval(mins => i),
       'verify', 'api_key', 'k1', '00000000-0000-0000-0000-000000000001'::uuid, 'arcface',
       0.3 + i * 0.05, 0.5, i >= 6, 10 + i
FROM generate_series(0, 4) d, generate_series(0, 9) i, noon AS n(noon)
"""


@pytest.fixture
def faceprint(settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:  # noqa: ANN001
    from service.cli.main import app
    from service.core.settings import get_settings

    monkeypatch.setenv("FACEPRINT_DATABASE_URL", settings.database_url.get_secret_value())
    monkeypatch.setenv("FACEPRINT_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    yield lambda *args: CliRunner().invoke(app, list(args))
    get_settings.cache_clear()


@pytest.fixture
def seeded(db_url: str) -> Iterator[str]:
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text(SEED))
    yield db_url
    engine.dispose()


def _scalar(db_url: str, query: str) -> object:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(query)).scalar()
    finally:
        engine.dispose()


def test_reports_in_three_formats(faceprint: Invoke, seeded: str) -> None:
    out = faceprint("analytics", "volume", "--format", "json")
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    assert len(rows) == 40 and {r["decisions"] for r in rows} == {10}
    assert sum(r["matches"] for r in rows) == 160
    recent = json.loads(faceprint("analytics", "volume", "--format", "json", "--since",
                                  "2000-01-01", "--model", "arcface").stdout)  # fmt: skip
    assert len(recent) == 40
    none = json.loads(faceprint("analytics", "volume", "--format", "json", "--model", "x").stdout)
    assert none == []
    table = faceprint("analytics", "latency")
    assert table.exit_code == 0 and "p95_ms" in table.stdout
    parsed = list(csv.DictReader(io.StringIO(faceprint("analytics", "drift", "--format",
                                                        "csv").stdout)))  # fmt: skip
    assert parsed and {"week", "model_id", "mean", "p50"} <= set(parsed[0])
    assert sum(int(r["matches"]) for r in parsed) == 160
    bad = faceprint("analytics", "volume", "--gallery", "not-a-uuid")
    assert bad.exit_code == 2


def test_refresh_and_prune_keep_the_daily_totals(faceprint: Invoke, seeded: str) -> None:
    assert faceprint("analytics", "refresh").exit_code == 0
    assert _scalar(seeded, "SELECT sum(decisions) FROM analytics.daily") == 400
    pruned = faceprint("history", "prune", "--older-than", "45")
    assert pruned.exit_code == 0, pruned.output
    assert "pruned 50 history rows" in pruned.output
    assert _scalar(seeded, "SELECT count(*) FROM verifications") == 350
    assert _scalar(seeded, "SELECT sum(decisions) FROM analytics.daily") == 400
    assert _scalar(seeded, "SELECT sum(matches) FROM verification_days") == 20
    again = faceprint("history", "prune", "--older-than", "45")
    assert "pruned 0 history rows" in again.output
    assert _scalar(seeded, "SELECT sum(decisions) FROM analytics.daily") == 400
    assert faceprint("history", "prune").exit_code == 2  # no N and no retention set


def test_url_gives_a_read_only_login(faceprint: Invoke, seeded: str) -> None:
    out = faceprint("analytics", "url")
    assert out.exit_code == 0, out.output
    dsn = out.stdout.strip()
    assert dsn.startswith("postgresql://faceprint_analyst:")
    assert faceprint("analytics", "url").stdout.strip() == dsn  # the same every time
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("faceprint_analyst",)
        assert conn.execute("SELECT count(*) FROM analytics.decisions").fetchone() == (400,)
        for forbidden in ("SELECT * FROM verifications", "SELECT * FROM templates",
                          "DELETE FROM analytics.decisions"):  # fmt: skip
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(forbidden)
