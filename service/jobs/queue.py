"""A durable job queue in the ``jobs`` table.

- ``enqueue`` runs in the caller's transaction (the job exists iff the caller commits)
  and sends ``NOTIFY`` on commit to wake a listening worker.
- ``claim`` takes up to N due jobs with ``FOR UPDATE SKIP LOCKED`` so that parallel
  workers never take the same job, and gives each a lease.
- A job's side effects and ``complete`` commit in ONE transaction that first locks the
  job row and checks the lease is still ours (``lock_owned``): a worker whose lease was
  taken over cannot complete it, so each job's effects land exactly once.
- ``reclaim_expired`` requeues jobs whose worker died (lease expired); after
  ``max_attempts`` a job ends ``failed`` with the reason.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from service.db.models import Job

CHANNEL = "faceprint_jobs"
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
# Retry delays grow 2, 4, 8 … seconds, capped: a broken job does not hog the queue.
BACKOFF_BASE_S = 2.0
BACKOFF_MAX_S = 300.0


@dataclass(frozen=True)
class ClaimedJob:
    id: uuid.UUID
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    gallery_id: uuid.UUID | None


def enqueue(
    session: Session,
    *,
    kind: str,
    payload: dict[str, Any],
    gallery_id: uuid.UUID | None = None,
    created_by: str | None = None,
    max_attempts: int = 5,
    job_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """Add a job in the caller's transaction. Postgres delivers the NOTIFY on commit."""
    new_id = job_id or uuid.uuid4()
    session.execute(
        text(
            "INSERT INTO jobs (id, kind, status, payload, gallery_id, created_by, max_attempts)"
            " VALUES (:id, :kind, 'queued', CAST(:payload AS jsonb), :gallery, :by, :max)"
        ),
        {
            "id": new_id,
            "kind": kind,
            "payload": json.dumps(payload),
            "gallery": gallery_id,
            "by": created_by,
            "max": max_attempts,
        },
    )
    session.execute(text("SELECT pg_notify(:channel, :kind)"), {"channel": CHANNEL, "kind": kind})
    return new_id


def claim(
    session: Session,
    *,
    worker_id: str,
    kinds: list[str],
    limit: int,
    lease_s: float,
) -> list[ClaimedJob]:
    """Lease up to ``limit`` due jobs to ``worker_id`` and commit, so the lease is visible
    to every other worker at once."""
    rows = session.execute(
        text(
            "UPDATE jobs SET status = 'running', worker_id = :worker, attempts = attempts + 1,"
            " lease_expires_at = now() + make_interval(secs => :lease), updated_at = now()"
            " WHERE id IN ("
            "   SELECT id FROM jobs WHERE status = 'queued' AND run_after <= now()"
            "   AND kind = ANY(:kinds) ORDER BY run_after, created_at LIMIT :limit"
            "   FOR UPDATE SKIP LOCKED)"
            " RETURNING id, kind, payload, attempts, max_attempts, gallery_id, created_at"
        ),
        {"worker": worker_id, "lease": lease_s, "kinds": kinds, "limit": limit},
    ).all()
    session.commit()
    rows = sorted(rows, key=lambda r: r.created_at)
    return [
        ClaimedJob(r.id, r.kind, r.payload, r.attempts, r.max_attempts, r.gallery_id) for r in rows
    ]


def lock_owned(session: Session, job_id: uuid.UUID, worker_id: str) -> bool:
    """Lock the job row for this transaction; True if ``worker_id`` still holds its lease.
    Call it first in the transaction that writes the job's effects."""
    row = session.execute(
        text("SELECT status, worker_id FROM jobs WHERE id = :id FOR UPDATE"), {"id": job_id}
    ).first()
    return row is not None and row.status == RUNNING and row.worker_id == worker_id


def lock_owned_many(session: Session, job_ids: list[uuid.UUID], worker_id: str) -> set[uuid.UUID]:
    """``lock_owned`` for a whole batch in one statement: locks the rows (in id order, so
    two transactions never wait on each other crosswise) and returns the ids whose lease
    ``worker_id`` still holds."""
    if not job_ids:
        return set()
    rows = session.execute(
        text(
            "SELECT id FROM jobs WHERE id = ANY(:ids) AND status = 'running'"
            " AND worker_id = :worker ORDER BY id FOR UPDATE"
        ),
        {"ids": job_ids, "worker": worker_id},
    ).scalars()
    return set(rows)


def complete_many(
    session: Session, worker_id: str, results: list[tuple[uuid.UUID, dict[str, Any]]]
) -> int:
    """``complete`` for a batch in one statement; returns how many were marked done."""
    if not results:
        return 0
    updated = session.execute(
        text(
            "UPDATE jobs SET status = 'done', result = v.result, error = NULL,"
            " lease_expires_at = NULL, updated_at = now()"
            " FROM (SELECT unnest(CAST(:ids AS uuid[])) AS id,"
            "   unnest(CAST(:results AS jsonb[])) AS result) AS v"
            " WHERE jobs.id = v.id AND jobs.worker_id = :worker AND jobs.status = 'running'"
        ),
        {
            "ids": [job_id for job_id, _ in results],
            "results": [json.dumps(result) for _, result in results],
            "worker": worker_id,
        },
    )
    return int(updated.rowcount)  # type: ignore[attr-defined]


def complete(
    session: Session, job_id: uuid.UUID, worker_id: str, result: dict[str, Any] | None = None
) -> bool:
    """Mark done (in the caller's transaction). False if the lease was lost."""
    updated = session.execute(
        text(
            "UPDATE jobs SET status = 'done', result = CAST(:result AS jsonb), error = NULL,"
            " lease_expires_at = NULL, updated_at = now()"
            " WHERE id = :id AND worker_id = :worker AND status = 'running'"
        ),
        {"id": job_id, "worker": worker_id, "result": json.dumps(result or {})},
    )
    return bool(updated.rowcount)  # type: ignore[attr-defined]


def fail(
    session: Session,
    job_id: uuid.UUID,
    worker_id: str,
    error: str,
    *,
    permanent: bool = False,
    result: dict[str, Any] | None = None,
) -> str | None:
    """Record a failure (in the caller's transaction): retry later with backoff, or end as
    ``failed`` when attempts are used up or the error is ``permanent`` (bad input will not
    get better). Returns the new status, or None if the lease was lost."""
    row = session.execute(
        text(
            "UPDATE jobs SET"
            " status = CASE WHEN :permanent OR attempts >= max_attempts"
            "   THEN 'failed' ELSE 'queued' END,"
            " run_after = now() + make_interval(secs => LEAST(:cap, power(:base, attempts))),"
            " error = :error, result = CAST(:result AS jsonb),"
            " lease_expires_at = NULL, updated_at = now()"
            " WHERE id = :id AND worker_id = :worker AND status = 'running'"
            " RETURNING status, attempts"
        ),
        {
            "id": job_id,
            "worker": worker_id,
            "error": error[:2000],
            "permanent": permanent,
            "base": BACKOFF_BASE_S,
            "cap": BACKOFF_MAX_S,
            "result": json.dumps(result) if result is not None else None,
        },
    ).first()
    return None if row is None else str(row.status)


def release(session: Session, job_ids: list[uuid.UUID], worker_id: str) -> int:
    """Give unstarted jobs back (graceful shutdown): queued again at once, and the attempt
    they were charged is refunded."""
    if not job_ids:
        return 0
    updated = session.execute(
        text(
            "UPDATE jobs SET status = 'queued', worker_id = NULL, lease_expires_at = NULL,"
            " attempts = GREATEST(attempts - 1, 0), run_after = now(), updated_at = now()"
            " WHERE id = ANY(:ids) AND worker_id = :worker AND status = 'running'"
        ),
        {"ids": job_ids, "worker": worker_id},
    )
    return int(updated.rowcount)  # type: ignore[attr-defined]


def extend_leases(
    session: Session, job_ids: list[uuid.UUID], worker_id: str, lease_s: float
) -> int:
    """Heartbeat: push the lease of jobs still held by ``worker_id`` forward."""
    if not job_ids:
        return 0
    updated = session.execute(
        text(
            "UPDATE jobs SET lease_expires_at = now() + make_interval(secs => :lease)"
            " WHERE id = ANY(:ids) AND worker_id = :worker AND status = 'running'"
        ),
        {"ids": job_ids, "worker": worker_id, "lease": lease_s},
    )
    return int(updated.rowcount)  # type: ignore[attr-defined]


def reclaim_expired(session: Session) -> int:
    """Requeue running jobs whose lease ran out (their worker died or hung); jobs out of
    attempts end ``failed``. Returns how many were touched; the caller commits."""
    updated = session.execute(
        text(
            "UPDATE jobs SET"
            " status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END,"
            " error = CASE WHEN attempts >= max_attempts"
            "   THEN 'lease expired ' || attempts || ' times (worker died or hung)'"
            "   ELSE error END,"
            " worker_id = NULL, lease_expires_at = NULL, run_after = now(), updated_at = now()"
            " WHERE id IN (SELECT id FROM jobs WHERE status = 'running'"
            "   AND lease_expires_at < now() FOR UPDATE SKIP LOCKED)"
        )
    )
    return int(updated.rowcount)  # type: ignore[attr-defined]


def queue_depth(session: Session, kinds: list[str] | None = None) -> int:
    query = "SELECT count(*) FROM jobs WHERE status = 'queued'"
    params: dict[str, Any] = {}
    if kinds:
        query += " AND kind = ANY(:kinds)"
        params["kinds"] = kinds
    return int(session.execute(text(query), params).scalar_one())


def oldest_queued_seconds(session: Session, kinds: list[str] | None = None) -> float:
    """How long the oldest due job has waited (0 with none): a queue that workers do
    not keep up with shows here before its depth looks alarming."""
    query = (
        "SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(run_after)), 0) FROM jobs"
        " WHERE status = 'queued' AND run_after <= now()"
    )
    params: dict[str, Any] = {}
    if kinds:
        query += " AND kind = ANY(:kinds)"
        params["kinds"] = kinds
    return float(session.execute(text(query), params).scalar_one())


def get_job(session: Session, job_id: uuid.UUID) -> Job | None:
    return session.get(Job, job_id)


@dataclass(frozen=True)
class JobCounts:
    queued: int
    running: int
    done: int
    failed: int


def counts(session: Session, job_ids: list[uuid.UUID]) -> JobCounts:
    rows = session.execute(
        text("SELECT status, count(*) AS n FROM jobs WHERE id = ANY(:ids) GROUP BY status"),
        {"ids": job_ids},
    ).all()
    by = {r.status: int(r.n) for r in rows}
    return JobCounts(by.get(QUEUED, 0), by.get(RUNNING, 0), by.get(DONE, 0), by.get(FAILED, 0))
