"""Analytics: ground-truth labels on the history, a BRIN index on its time, the
``analytics`` schema (the stable views analysts query, and a daily materialised
aggregate), the table that keeps pruned days' aggregates, and the read-only role
``faceprint_analyst`` that may read that schema and nothing else.

The views are a contract: a change to their columns needs a migration and a note in
docs/analytics.md. The base tables under them may change freely.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

DECISIONS = """
CREATE VIEW analytics.decisions AS
SELECT
    v.id,
    v.created_at,
    (v.created_at AT TIME ZONE 'UTC')::date AS day,
    v.kind,
    v.gallery_id,
    v.subject_id,
    v.external_id,
    v.principal_type,
    v.principal_id,
    v.request_id,
    v.model_id,
    v.threshold,
    v.similarity,
    v.match,
    CASE
        WHEN v.kind = 'liveness' THEN v.liveness_decision
        WHEN v.match THEN 'match'
        ELSE 'no_match'
    END AS decision,
    CASE WHEN v.kind = 'search' THEN jsonb_array_length(v.candidates) END AS candidate_count,
    v.liveness_decision,
    v.liveness_score,
    v.liveness_signals ->> 'mode' AS liveness_mode,
    v.liveness_signals,
    v.latency_ms,
    v.label,
    v.label_note,
    v.labelled_by,
    v.labelled_at
FROM public.verifications v
"""

# The Wilson score interval (95%) of k successes in n trials: a rate is never reported
# without it; unlike the normal approximation it stays inside [0, 1] at k = 0 or k = n.
WILSON = """
CREATE FUNCTION analytics.wilson(k bigint, n bigint, OUT low float8, OUT high float8)
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT
        CASE WHEN n = 0 THEN NULL ELSE greatest(0.0, (p + z*z/(2*n)
            - z * sqrt(p*(1-p)/n + z*z/(4.0*n*n))) / (1 + z*z/n)) END,
        CASE WHEN n = 0 THEN NULL ELSE least(1.0, (p + z*z/(2*n)
            + z * sqrt(p*(1-p)/n + z*z/(4.0*n*n))) / (1 + z*z/n)) END
    FROM (SELECT CASE WHEN n = 0 THEN 0.0 ELSE k::float8 / n END AS p,
                 1.959963984540054::float8 AS z) c
$$
"""

# One row per (UTC day, gallery, kind, model, caller). Days the history no longer holds
# (pruned) come from their aggregates, kept in verification_days when they were pruned.
DAILY = """
CREATE MATERIALIZED VIEW analytics.daily AS
SELECT
    (v.created_at AT TIME ZONE 'UTC')::date AS day,
    v.gallery_id,
    v.kind,
    v.model_id,
    v.principal_type,
    v.principal_id,
    count(*) AS decisions,
    count(*) FILTER (WHERE v.match) AS matches,
    count(*) FILTER (WHERE v.liveness_decision = 'live') AS liveness_live,
    count(*) FILTER (WHERE v.liveness_decision IS NOT NULL) AS liveness_checked,
    count(*) FILTER (WHERE v.label IS NOT NULL) AS labelled,
    avg(v.similarity) AS mean_similarity,
    avg(v.latency_ms) AS mean_latency_ms,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY v.latency_ms) AS p50_latency_ms,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY v.latency_ms) AS p95_latency_ms
FROM public.verifications v
GROUP BY 1, 2, 3, 4, 5, 6
UNION ALL
SELECT day, gallery_id, kind, model_id, principal_type, principal_id, decisions, matches,
       liveness_live, liveness_checked, labelled, mean_similarity, mean_latency_ms,
       p50_latency_ms, p95_latency_ms
FROM public.verification_days
WITH DATA
"""


def upgrade() -> None:
    op.add_column("verifications", sa.Column("label", sa.String(16), nullable=True))
    op.add_column("verifications", sa.Column("label_note", sa.Text(), nullable=True))
    op.add_column("verifications", sa.Column("labelled_by", sa.String(100), nullable=True))
    op.add_column(
        "verifications", sa.Column("labelled_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_check_constraint(
        "ck_verifications_label",
        "verifications",
        "label IN ('genuine', 'impostor', 'attack', 'bona_fide')",
    )
    # The history is appended in time order, so a BRIN index (a few pages for millions
    # of rows) narrows a time range as well as a B-tree at a fraction of the insert cost.
    op.create_index(
        "ix_verifications_created_brin",
        "verifications",
        ["created_at"],
        postgresql_using="brin",
    )
    # The error-rate reports read only labelled rows: few, and found without a scan.
    op.create_index(
        "ix_verifications_labelled",
        "verifications",
        ["model_id", "created_at"],
        postgresql_where=sa.text("label IS NOT NULL"),
    )
    # Aggregates of the days that retention pruned from the history (analytics.daily
    # reads them), so the daily numbers outlive the rows they were computed from.
    op.create_table(
        "verification_days",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("gallery_id", sa.UUID(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("model_id", sa.String(64), nullable=True),
        sa.Column("principal_type", sa.String(16), nullable=False),
        sa.Column("principal_id", sa.String(64), nullable=False),
        sa.Column("decisions", sa.BigInteger(), nullable=False),
        sa.Column("matches", sa.BigInteger(), nullable=False),
        sa.Column("liveness_live", sa.BigInteger(), nullable=False),
        sa.Column("liveness_checked", sa.BigInteger(), nullable=False),
        sa.Column("labelled", sa.BigInteger(), nullable=False),
        sa.Column("mean_similarity", sa.Float(), nullable=True),
        sa.Column("mean_latency_ms", sa.Float(), nullable=True),
        sa.Column("p50_latency_ms", sa.Float(), nullable=True),
        sa.Column("p95_latency_ms", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verification_days")),
    )
    op.create_index("ix_verification_days_day", "verification_days", ["day"])
    op.execute("CREATE SCHEMA analytics")
    op.execute(DECISIONS)
    op.execute(
        "CREATE VIEW analytics.galleries AS"
        " SELECT id, name, active_model_id, created_at FROM public.galleries"
    )
    op.execute(
        "CREATE VIEW analytics.models AS"
        " SELECT id, dim, metric, threshold, version, created_at FROM public.models"
    )
    op.execute(
        "CREATE VIEW analytics.enrolments AS"
        " SELECT id, gallery_id, subject_id, status, quality_score, created_at"
        " FROM public.faces"
    )
    op.execute(WILSON)
    op.execute(DAILY)
    # REFRESH ... CONCURRENTLY needs a unique index; NULL galleries and models (a verify
    # of two images has no gallery) are one group each, hence NULLS NOT DISTINCT.
    op.execute(
        "CREATE UNIQUE INDEX ix_analytics_daily_key ON analytics.daily"
        " (day, gallery_id, kind, model_id, principal_type, principal_id) NULLS NOT DISTINCT"
    )
    _create_role()


def _create_role() -> None:
    """Roles belong to the cluster, not the database: create it once, whichever database
    migrates first; grant in this one. NOLOGIN: nobody logs in as the analyst until an
    admin says so (``faceprint analytics url`` gives it a password and LOGIN). A database
    user without CREATEROLE gets a notice, and the views without the role."""
    op.execute("""
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'faceprint_analyst') THEN
        CREATE ROLE faceprint_analyst NOLOGIN;
        -- An analyst's query must never hold up the service: read-only, bounded.
        ALTER ROLE faceprint_analyst SET default_transaction_read_only = on;
        ALTER ROLE faceprint_analyst SET statement_timeout = '5min';
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'cannot create role faceprint_analyst (no CREATEROLE): analytics views only';
END
$$""")
    op.execute("""
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'faceprint_analyst') THEN
        GRANT USAGE ON SCHEMA analytics TO faceprint_analyst;
        GRANT SELECT ON ALL TABLES IN SCHEMA analytics TO faceprint_analyst;
    END IF;
END
$$""")


def downgrade() -> None:
    op.execute("DROP MATERIALIZED VIEW analytics.daily")
    op.execute("DROP FUNCTION analytics.wilson(bigint, bigint)")
    for view in ("enrolments", "models", "galleries", "decisions"):
        op.execute(f"DROP VIEW analytics.{view}")
    op.execute("DROP SCHEMA analytics")
    # Other databases of the cluster may still grant to the role: then it stays.
    op.execute("""
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'faceprint_analyst') THEN
        DROP ROLE faceprint_analyst;
    END IF;
EXCEPTION WHEN dependent_objects_still_exist OR insufficient_privilege THEN
    RAISE NOTICE 'role faceprint_analyst kept: another database still uses it';
END
$$""")
    op.drop_index("ix_verification_days_day", table_name="verification_days")
    op.drop_table("verification_days")
    op.drop_index("ix_verifications_labelled", table_name="verifications")
    op.drop_index("ix_verifications_created_brin", table_name="verifications")
    op.drop_constraint("ck_verifications_label", "verifications", type_="check")
    for column in ("labelled_at", "labelled_by", "label_note", "label"):
        op.drop_column("verifications", column)
