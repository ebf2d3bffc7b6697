"""The reports' SQL. Each reads the ``analytics`` views (the same an analyst queries in
psql, see docs/analytics.md) under a :class:`Scope`'s WHERE clause; one function per
report returns its rows as dictionaries, columns in order."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from service.domain.analytics.scope import Filters, Scope

Rows = list[dict[str, Any]]


def _run(session: Session, sql: str, params: dict[str, Any]) -> Rows:
    return [dict(row) for row in session.execute(text(sql), params).mappings()]


def volume(session: Session, scope: Scope) -> Rows:
    """Decisions per UTC day, gallery, kind and caller (API key or user)."""
    where, params = scope.where()
    return _run(session, f"""
        SELECT d.day, d.gallery_id, d.kind, d.principal_type, d.principal_id,
               count(*) AS decisions, count(*) FILTER (WHERE d.match) AS matches
        FROM analytics.decisions d {where}
        GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5""", params)  # fmt: skip  # noqa: S608


def outcomes(session: Session, scope: Scope) -> Rows:
    """Per gallery: verify match rate, search hit rate, liveness pass rate, and the
    failure-to-enrol rate of the enrolments made in the range."""
    where, params = scope.where()
    # Enrolments have no model column: the model filter applies to decisions alone.
    enrol_scope = Scope(Filters(**{**scope.filters.__dict__, "model_id": None}), scope.galleries)
    enrol_where, enrol_params = enrol_scope.where("e")
    return _run(session, f"""
        WITH decided AS (
            SELECT d.gallery_id,
                   count(*) FILTER (WHERE d.kind = 'verify') AS verifications,
                   count(*) FILTER (WHERE d.kind = 'verify' AND d.match) AS verify_matches,
                   count(*) FILTER (WHERE d.kind = 'search') AS searches,
                   count(*) FILTER (WHERE d.kind = 'search' AND d.match) AS search_hits,
                   count(d.liveness_decision) AS liveness_checks,
                   count(*) FILTER (WHERE d.liveness_decision = 'live') AS liveness_passed,
                   0 AS enrolments, 0 AS enrol_failures
            FROM analytics.decisions d {where} GROUP BY 1
            UNION ALL
            SELECT e.gallery_id, 0, 0, 0, 0, 0, 0, count(*),
                   count(*) FILTER (WHERE e.status = 'failed')
            FROM analytics.enrolments e {enrol_where} GROUP BY 1
        ), summed AS (
            SELECT gallery_id, sum(verifications)::bigint AS verifications,
                   sum(verify_matches)::bigint AS verify_matches,
                   sum(searches)::bigint AS searches, sum(search_hits)::bigint AS search_hits,
                   sum(liveness_checks)::bigint AS liveness_checks,
                   sum(liveness_passed)::bigint AS liveness_passed,
                   sum(enrolments)::bigint AS enrolments,
                   sum(enrol_failures)::bigint AS enrol_failures
            FROM decided GROUP BY 1
        )
        SELECT gallery_id,
               verifications, verify_matches,
               verify_matches::float8 / nullif(verifications, 0) AS verify_match_rate,
               searches, search_hits,
               search_hits::float8 / nullif(searches, 0) AS search_hit_rate,
               liveness_checks, liveness_passed,
               liveness_passed::float8 / nullif(liveness_checks, 0) AS liveness_pass_rate,
               enrolments, enrol_failures,
               enrol_failures::float8 / nullif(enrolments, 0) AS failure_to_enrol_rate
        FROM summed ORDER BY gallery_id""", {**params, **enrol_params})  # fmt: skip  # noqa: S608


def latency(session: Session, scope: Scope) -> Rows:
    """Latency quantiles per kind of decision (the route) and model, in milliseconds,
    from the request's start to the history write."""
    where, params = scope.where()
    return _run(session, f"""
        SELECT d.kind, d.model_id, count(d.latency_ms) AS decisions,
               avg(d.latency_ms) AS mean_ms,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY d.latency_ms) AS p50_ms,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY d.latency_ms) AS p95_ms,
               percentile_cont(0.99) WITHIN GROUP (ORDER BY d.latency_ms) AS p99_ms
        FROM analytics.decisions d {where} AND d.latency_ms IS NOT NULL
        GROUP BY 1, 2 ORDER BY 1, 2""", params)  # fmt: skip  # noqa: S608


def scores(session: Session, scope: Scope) -> Rows:
    """Similarity histogram (buckets of 0.05 over [-1, 1]) per model and ground truth
    (genuine, impostor, or unlabelled), with the bucket that holds the model's threshold
    marked. The threshold is the one the decisions used (their mean, should it vary)."""
    where, params = scope.where()
    return _run(session, f"""
        WITH scored AS (
            SELECT d.model_id, d.similarity, d.threshold,
                   CASE WHEN d.label IN ('genuine', 'impostor') THEN d.label
                        ELSE 'unlabelled' END AS truth,
                   least(width_bucket(d.similarity, -1.0, 1.0, 40), 40) AS bucket
            FROM analytics.decisions d {where}
              AND d.kind IN ('verify', 'search') AND d.similarity IS NOT NULL
        ), cut AS (
            SELECT model_id, avg(threshold) AS threshold FROM scored GROUP BY 1
        )
        SELECT s.model_id, s.truth,
               round(-1.0 + (s.bucket - 1) * 0.05, 2)::float8 AS bucket_low,
               round(-1.0 + s.bucket * 0.05, 2)::float8 AS bucket_high,
               count(*) AS decisions, c.threshold,
               (c.threshold >= -1.0 + (s.bucket - 1) * 0.05
                AND c.threshold < -1.0 + s.bucket * 0.05) AS holds_threshold
        FROM scored s JOIN cut c USING (model_id)
        GROUP BY s.model_id, s.truth, s.bucket, c.threshold
        ORDER BY 1, 2, 3""", params)  # fmt: skip  # noqa: S608


def errors(session: Session, scope: Scope) -> Rows:
    """The caller's own error rates from labelled decisions, each with its count and a
    95% Wilson interval: FMR and FNMR (verify, per model and threshold), FPIR and FNIR
    (search), APCER and BPCER (liveness, ISO/IEC 30107-3, per mode)."""
    where, params = scope.where()
    return _run(session, f"""
        WITH labelled AS (
            SELECT * FROM analytics.decisions d {where} AND d.label IS NOT NULL
        ), counted AS (
            SELECT 'FMR' AS metric, kind, model_id, round(threshold::numeric, 4) AS threshold,
                   NULL AS liveness_mode,
                   count(*) FILTER (WHERE match) AS errors, count(*) AS trials
            FROM labelled WHERE kind = 'verify' AND label = 'impostor' GROUP BY 2, 3, 4
            UNION ALL
            SELECT 'FNMR', kind, model_id, round(threshold::numeric, 4), NULL,
                   count(*) FILTER (WHERE NOT match), count(*)
            FROM labelled WHERE kind = 'verify' AND label = 'genuine' GROUP BY 2, 3, 4
            UNION ALL
            SELECT 'FPIR', kind, model_id, round(threshold::numeric, 4), NULL,
                   count(*) FILTER (WHERE match), count(*)
            FROM labelled WHERE kind = 'search' AND label = 'impostor' GROUP BY 2, 3, 4
            UNION ALL
            SELECT 'FNIR', kind, model_id, round(threshold::numeric, 4), NULL,
                   count(*) FILTER (WHERE NOT match), count(*)
            FROM labelled WHERE kind = 'search' AND label = 'genuine' GROUP BY 2, 3, 4
            UNION ALL
            SELECT 'APCER', NULL, NULL, NULL, coalesce(liveness_mode, kind),
                   count(*) FILTER (WHERE liveness_decision = 'live'), count(*)
            FROM labelled WHERE label = 'attack' AND liveness_decision IS NOT NULL
            GROUP BY 5
            UNION ALL
            SELECT 'BPCER', NULL, NULL, NULL, coalesce(liveness_mode, kind),
                   count(*) FILTER (WHERE liveness_decision <> 'live'), count(*)
            FROM labelled WHERE label = 'bona_fide' AND liveness_decision IS NOT NULL
            GROUP BY 5
        )
        SELECT c.metric, c.kind, c.model_id, c.threshold::float8 AS threshold,
               c.liveness_mode, c.errors, c.trials,
               c.errors::float8 / c.trials AS rate, w.low AS ci_low, w.high AS ci_high
        FROM counted c, analytics.wilson(c.errors, c.trials) w
        ORDER BY 1, 2, 3, 4, 5""", params)  # fmt: skip  # noqa: S608


def liveness(session: Session, scope: Scope) -> Rows:
    """Per liveness mode (passive, active, or checked within a verify): checks, pass
    rate, and the distribution of the overall score and of each signal's attack score."""
    where, params = scope.where()
    return _run(session, f"""
        WITH checked AS (
            SELECT d.*, coalesce(d.liveness_mode, d.kind) AS mode
            FROM analytics.decisions d {where} AND d.liveness_decision IS NOT NULL
        ), measured AS (
            SELECT mode, 'overall' AS signal, liveness_decision, liveness_score AS value
            FROM checked
            UNION ALL
            SELECT c.mode, s.key, c.liveness_decision,
                   coalesce(s.value ->> 'attack', s.value ->> 'score')::float8
            FROM checked c, jsonb_each(coalesce(c.liveness_signals, '{{}}'::jsonb)) s
            WHERE jsonb_typeof(s.value) = 'object'
              AND (s.value ? 'attack' OR s.value ? 'score')
        )
        SELECT mode, signal, count(*) AS checks,
               count(*) FILTER (WHERE liveness_decision = 'live') AS passed,
               (count(*) FILTER (WHERE liveness_decision = 'live'))::float8 / count(*)
                   AS pass_rate,
               avg(value) AS mean,
               percentile_cont(0.1) WITHIN GROUP (ORDER BY value) AS p10,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY value) AS p50,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY value) AS p90
        FROM measured GROUP BY 1, 2 ORDER BY 1, 2""", params)  # fmt: skip  # noqa: S608


def drift(session: Session, scope: Scope) -> Rows:
    """Weekly (ISO weeks, UTC) mean and quantiles of genuine-match similarity per model:
    accepted verifications, less those a reviewer labelled impostor. A slow slide is the
    model or the capture conditions drifting."""
    where, params = scope.where()
    return _run(session, f"""
        SELECT date_trunc('week', d.day)::date AS week, d.model_id,
               count(*) AS matches, avg(d.similarity) AS mean,
               percentile_cont(0.1) WITHIN GROUP (ORDER BY d.similarity) AS p10,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY d.similarity) AS p50,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY d.similarity) AS p90
        FROM analytics.decisions d {where}
          AND d.kind = 'verify' AND d.match AND d.label IS DISTINCT FROM 'impostor'
        GROUP BY 1, 2 ORDER BY 1, 2""", params)  # fmt: skip  # noqa: S608


def duplicates(session: Session, scope: Scope) -> Rows:
    """Pairs of subjects of one gallery whose enrolled faces are as alike as one person's
    (cosine similarity at or above the model's threshold): one face enrolled under
    several identities. Reads the templates, so it is not in the analyst's schema."""
    galleries = Scope(Filters(gallery_id=scope.filters.gallery_id,
                              model_id=scope.filters.model_id), scope.galleries)  # fmt: skip
    where, params = galleries.where("a")
    return _run(session, f"""
        SELECT a.gallery_id, a.model_id, a.subject_id AS subject_a, sa.external_id AS external_a,
               b.subject_id AS subject_b, sb.external_id AS external_b,
               max(1 - (a.embedding <=> b.embedding)) AS similarity, m.threshold
        FROM templates a
        JOIN templates b ON b.gallery_id = a.gallery_id AND b.model_id = a.model_id
                        AND b.subject_id > a.subject_id
        JOIN models m ON m.id = a.model_id
        JOIN subjects sa ON sa.id = a.subject_id
        JOIN subjects sb ON sb.id = b.subject_id
        {where} AND 1 - (a.embedding <=> b.embedding) >= m.threshold
        GROUP BY 1, 2, 3, 4, 5, 6, 8
        ORDER BY similarity DESC""", params)  # fmt: skip  # noqa: S608
