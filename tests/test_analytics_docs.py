"""Every query in docs/analytics.md runs, as the analyst role, on a seeded history."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, text

from tests.test_analytics_cli import SEED

DOC = Path(__file__).resolve().parent.parent / "docs" / "analytics.md"
QUERIES = re.findall(r"```sql\n(.*?)```", DOC.read_text(), flags=re.DOTALL)

LABELS_AND_LIVENESS = """
UPDATE verifications SET label = CASE WHEN match THEN 'genuine' ELSE 'impostor' END
WHERE similarity > 0.5;
INSERT INTO verifications (id, kind, principal_type, principal_id, liveness_decision,
                           liveness_score, liveness_signals, label, latency_ms)
VALUES (gen_random_uuid(), 'liveness', 'api_key', 'k1', 'live', 0.9,
        '{"mode": "passive", "texture": {"attack": 0.1}, "frequency": {"attack": 0.2}}',
        'bona_fide', 30),
       (gen_random_uuid(), 'liveness', 'api_key', 'k1', 'live', 0.7,
        '{"mode": "passive", "texture": {"attack": 0.6}, "frequency": {"attack": 0.4}}',
        'attack', 31);
UPDATE verifications SET external_id = 'person-' || (extract(minute FROM created_at)::int % 3)
WHERE kind = 'verify';
REFRESH MATERIALIZED VIEW analytics.daily;
"""


def test_the_doc_has_a_dozen_queries() -> None:
    assert len(QUERIES) >= 12


@pytest.mark.parametrize("query", QUERIES, ids=[q.splitlines()[0][:40] for q in QUERIES])
def test_each_query_runs_as_the_analyst(db_url: str, query: str) -> None:
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text(SEED))
        for statement in LABELS_AND_LIVENESS.split(";\n"):
            if statement.strip():
                conn.execute(text(statement))
    engine.dispose()
    with psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute("SET ROLE faceprint_analyst")
        rows = conn.execute(query).fetchall()  # type: ignore[call-overload]
    if "enrolments" not in query:  # the seed enrols nobody
        assert rows, query
