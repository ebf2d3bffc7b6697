"""The durable job queue on a real Postgres: leases, retries, LISTEN/NOTIFY, the jobs
route, and the acceptance case — SIGKILL a worker process mid-batch and another worker
finishes every job exactly once."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from service.db.session import make_sessionmaker
from service.jobs import queue
from service.jobs.notify import JobListener
from service.jobs.queue import ClaimedJob
from service.jobs.runner import JobRunner, PermanentJobError, RunnerConfig
from tests.conftest import REPO, make_key

KIND = "test.record"


class RecordingHandler:
    """A real job kind for queue tests: each job writes one ``events`` row (its effect),
    after a pause standing in for the batch's compute time."""

    kinds = (KIND,)

    def __init__(self, prepare_s: float = 0.0) -> None:
        self.prepare_s = prepare_s

    def prepare(self, jobs: Sequence[ClaimedJob]) -> list[Any]:
        time.sleep(self.prepare_s)
        out: list[Any] = []
        for job in jobs:
            if job.payload.get("bad"):
                out.append(PermanentJobError("bad_input", "this job can never succeed"))
            elif job.payload.get("flaky"):
                out.append(RuntimeError("transient trouble"))
            else:
                out.append(job.payload["n"])
        return out

    def apply(self, session: Session, job: ClaimedJob, prepared: Any) -> dict[str, Any]:
        session.execute(
            text(
                "INSERT INTO events (event_type, payload)"
                " VALUES ('test.done', jsonb_build_object('job', CAST(:id AS text), 'n', :n))"
            ),
            {"id": str(job.id), "n": prepared},
        )
        return {"n": prepared, "faces": 1}

    def on_failed(self, session: Session, job: ClaimedJob, error: BaseException) -> None:
        session.execute(
            text(
                "INSERT INTO events (event_type, payload)"
                " VALUES ('test.failed', jsonb_build_object('job', CAST(:id AS text)))"
            ),
            {"id": str(job.id)},
        )


def run_worker_process(url: str, worker_id: str, lease_s: float, prepare_s: float) -> None:
    """Entry point of the worker subprocesses below."""
    from service.db.session import make_engine

    engine = make_engine(url, pool_size=2)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    runner = JobRunner(
        sessions=make_sessionmaker(engine),
        handler=RecordingHandler(prepare_s),
        config=RunnerConfig(
            batch_size=8, max_wait_ms=20, lease_s=lease_s, poll_s=0.2, worker_id=worker_id
        ),
    )
    runner.run(stop)


def _spawn(url: str, worker_id: str, lease_s: float, prepare_s: float) -> subprocess.Popen[bytes]:
    code = (
        "from tests.test_jobs_queue import run_worker_process; "
        f"run_worker_process({url!r}, {worker_id!r}, {lease_s}, {prepare_s})"
    )
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO)


def _enqueue(engine: Engine, n: int, **extra: Any) -> list[uuid.UUID]:
    with make_sessionmaker(engine)() as session:
        ids = [
            queue.enqueue(session, kind=KIND, payload={"n": i, **extra}, max_attempts=3)
            for i in range(n)
        ]
        session.commit()
    return ids


def _status(engine: Engine, job_id: uuid.UUID) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM jobs WHERE id = :id"), {"id": job_id}).mappings()
        return dict(row.one())


def _runner(engine: Engine, **config: Any) -> JobRunner:
    return JobRunner(
        sessions=make_sessionmaker(engine),
        handler=RecordingHandler(),
        config=RunnerConfig(**{"max_wait_ms": 0, "poll_s": 0.05, **config}),
    )


def test_claims_are_disjoint_and_leased(engine: Engine) -> None:
    ids = _enqueue(engine, 10)
    make = make_sessionmaker(engine)
    with make() as s1, make() as s2:
        a = queue.claim(s1, worker_id="a", kinds=[KIND], limit=6, lease_s=30)
        b = queue.claim(s2, worker_id="b", kinds=[KIND], limit=6, lease_s=30)
        c = queue.claim(s2, worker_id="c", kinds=["other"], limit=6, lease_s=30)
    assert len(a) == 6 and len(b) == 4 and c == []
    assert {j.id for j in a} | {j.id for j in b} == set(ids)
    assert [j.payload["n"] for j in a] == list(range(6))  # oldest first
    row = _status(engine, a[0].id)
    assert row["status"] == "running" and row["worker_id"] == "a" and row["attempts"] == 1
    assert row["lease_expires_at"] is not None


def test_runner_completes_jobs_with_effects_exactly_once(engine: Engine) -> None:
    ids = _enqueue(engine, 5)
    runner = _runner(engine, batch_size=4)
    stop = threading.Event()
    assert runner.run_once(stop) == 4
    assert runner.run_once(stop) == 1
    assert runner.run_once(stop) == 0
    for job_id in ids:
        row = _status(engine, job_id)
        assert row["status"] == "done" and row["lease_expires_at"] is None
        assert row["result"]["faces"] == 1
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar_one() == 5
    assert runner.metrics.faces._value.get() == 5  # noqa: SLF001 - prometheus internals


def test_transient_failures_retry_with_backoff_then_fail_with_reason(engine: Engine) -> None:
    [job_id] = _enqueue(engine, 1, flaky=True)
    runner = _runner(engine, batch_size=1)
    stop = threading.Event()
    for attempt in (1, 2, 3):
        # Skip the backoff wait so the test is quick; the delay itself is checked below.
        with engine.begin() as conn:
            conn.execute(text("UPDATE jobs SET run_after = now()"))
        assert runner.run_once(stop) == 1
        row = _status(engine, job_id)
        assert row["attempts"] == attempt
        if attempt < 3:
            assert row["status"] == "queued"
            assert (row["run_after"] - row["updated_at"]).total_seconds() >= 2**attempt - 0.5
    assert row["status"] == "failed"
    assert "transient trouble" in row["error"]
    assert row["result"] == {"reason": "RuntimeError"}


def test_permanent_failure_is_not_retried(engine: Engine) -> None:
    [job_id] = _enqueue(engine, 1, bad=True)
    assert _runner(engine, batch_size=1).run_once(threading.Event()) == 1
    row = _status(engine, job_id)
    assert row["status"] == "failed" and row["attempts"] == 1
    assert row["error"] == "this job can never succeed"
    with engine.connect() as conn:
        kinds = conn.execute(text("SELECT event_type FROM events")).scalars().all()
    assert kinds == ["test.failed"]


def test_expired_lease_is_reclaimed_and_stale_worker_cannot_complete(engine: Engine) -> None:
    [job_id] = _enqueue(engine, 1)
    make = make_sessionmaker(engine)
    with make() as session:
        [stale] = queue.claim(session, worker_id="dead", kinds=[KIND], limit=1, lease_s=0.05)
    time.sleep(0.1)
    with make() as session:
        assert queue.reclaim_expired(session) == 1
        session.commit()
        [fresh] = queue.claim(session, worker_id="alive", kinds=[KIND], limit=1, lease_s=30)
    assert fresh.id == stale.id and fresh.attempts == 2
    with make() as session:
        assert not queue.lock_owned(session, job_id, "dead")
        assert not queue.complete(session, job_id, "dead", {})
        session.rollback()
    with make() as session:
        assert queue.lock_owned(session, job_id, "alive")
        assert queue.complete(session, job_id, "alive", {"ok": True})
        session.commit()
    assert _status(engine, job_id)["status"] == "done"


def test_lease_expiring_too_often_ends_failed(engine: Engine) -> None:
    [job_id] = _enqueue(engine, 1)
    make = make_sessionmaker(engine)
    for _ in range(3):
        with make() as session:
            queue.claim(session, worker_id="dies", kinds=[KIND], limit=1, lease_s=0.01)
        time.sleep(0.03)
        with make() as session:
            queue.reclaim_expired(session)
            session.commit()
    row = _status(engine, job_id)
    assert row["status"] == "failed" and "lease expired 3 times" in row["error"]


def test_stop_while_gathering_releases_the_batch(engine: Engine) -> None:
    [job_id] = _enqueue(engine, 1)
    stop = threading.Event()
    runner = _runner(engine, batch_size=8, max_wait_ms=5000)
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    assert runner.run_once(stop) == 0
    assert time.monotonic() - started < 3
    row = _status(engine, job_id)
    assert row["status"] == "queued" and row["attempts"] == 0 and row["worker_id"] is None


def test_dynamic_batching_waits_for_more_jobs_up_to_the_deadline(engine: Engine) -> None:
    _enqueue(engine, 1)
    threading.Timer(0.1, lambda: _enqueue(engine, 2)).start()
    runner = _runner(engine, batch_size=8, max_wait_ms=600)
    batch = runner.gather(threading.Event())
    assert len(batch) == 3


def test_listen_notify_wakes_on_commit_only(engine: Engine, db_url: str) -> None:
    listener = JobListener(db_url)
    try:
        assert not listener.wait(0.05)
        with make_sessionmaker(engine)() as session:
            queue.enqueue(session, kind=KIND, payload={"n": 1})
            assert not listener.wait(0.1)  # not committed yet: nothing announced
            session.commit()
        started = time.monotonic()
        assert listener.wait(5.0)
        assert time.monotonic() - started < 1.0
    finally:
        listener.close()


def test_jobs_route_shows_status_only_to_callers_who_see_the_gallery(
    client: Any, engine: Engine
) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO models (id, dim, threshold, version) VALUES ('m', 128, 0.9, '1')")
        )
        g1, g2 = uuid.uuid4(), uuid.uuid4()
        for gid in (g1, g2):
            conn.execute(
                text("INSERT INTO galleries (id, name, active_model_id) VALUES (:id, 'g', 'm')"),
                {"id": gid},
            )
    with make_sessionmaker(engine)() as session:
        job_id = queue.enqueue(session, kind=KIND, payload={"n": 1}, gallery_id=g1)
        maintenance = queue.enqueue(session, kind=KIND, payload={"n": 2})
        session.commit()
    admin = {"X-API-Key": make_key(client, "admin")}
    own = {"X-API-Key": make_key(client, "client", [str(g1)])}
    other = {"X-API-Key": make_key(client, "client", [str(g2)])}

    body = client.get(f"/v1/jobs/{job_id}", headers=own).json()
    assert body["status"] == "queued" and body["gallery_id"] == str(g1)
    assert client.get(f"/v1/jobs/{job_id}", headers=admin).status_code == 200
    for headers, path in ((other, job_id), (own, maintenance), (own, uuid.uuid4())):
        response = client.get(f"/v1/jobs/{path}", headers=headers)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
    assert client.get(f"/v1/jobs/{job_id}").status_code == 401
    assert client.get("/v1/jobs/not-a-uuid", headers=admin).status_code == 422


def test_sigkill_mid_batch_then_another_worker_finishes_each_job_once(
    engine: Engine, db_url: str
) -> None:
    ids = _enqueue(engine, 40)
    # Worker A takes batches of 8 and spends 1 s "embedding" each: kill it mid-batch.
    doomed = _spawn(db_url, "doomed", lease_s=2.0, prepare_s=1.0)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                held = conn.execute(
                    text(
                        "SELECT count(*) FROM jobs WHERE worker_id = 'doomed'"
                        " AND status = 'running'"
                    )
                ).scalar_one()
            if held:
                break
            time.sleep(0.05)
        assert held, "worker A never claimed a batch"
        time.sleep(0.3)  # inside prepare: claimed, not committed
    finally:
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
    with engine.connect() as conn:
        stranded = conn.execute(
            text("SELECT count(*) FROM jobs WHERE status = 'running' AND worker_id = 'doomed'")
        ).scalar_one()
    assert stranded > 0  # the kill left leased jobs behind

    rescuers = [_spawn(db_url, f"rescuer-{i}", lease_s=30.0, prepare_s=0.05) for i in (1, 2)]
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with make_sessionmaker(engine)() as session:
                if queue.counts(session, ids).done == len(ids):
                    break
            time.sleep(0.2)
    finally:
        for proc in rescuers:
            proc.send_signal(signal.SIGTERM)
        for proc in rescuers:
            assert proc.wait(timeout=20) == 0
    with engine.connect() as conn:
        statuses = conn.execute(text("SELECT status, count(*) FROM jobs GROUP BY status")).all()
        effects = conn.execute(
            text("SELECT payload->>'job' AS job, count(*) AS n FROM events GROUP BY 1")
        ).all()
        lost_leases = conn.execute(
            text("SELECT count(*) FROM jobs WHERE attempts >= 2")
        ).scalar_one()
    assert dict(statuses) == {"done": len(ids)}  # type: ignore[arg-type]
    assert {uuid.UUID(r.job) for r in effects} == set(ids)
    assert all(r.n == 1 for r in effects)  # exactly once, never twice
    assert lost_leases >= stranded  # the killed batch really was retried by a rescuer


def test_sigterm_finishes_the_batch_in_hand_then_exits(engine: Engine, db_url: str) -> None:
    ids = _enqueue(engine, 12)
    worker = _spawn(db_url, "graceful", lease_s=30.0, prepare_s=1.5)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                held = conn.execute(
                    text("SELECT count(*) FROM jobs WHERE status = 'running'")
                ).scalar_one()
            if held:
                break
            time.sleep(0.05)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
    with make_sessionmaker(engine)() as session:
        counts = queue.counts(session, ids)
    # The batch of 8 it was embedding was finished; the rest was never taken.
    assert (counts.done, counts.running, counts.queued) == (8, 0, 4)


class TimedHandler(RecordingHandler):
    """Records when each batch was prepared and written, and fails the write of jobs
    marked ``fail_write``."""

    def __init__(self, prepare_s: float, apply_s: float) -> None:
        super().__init__(prepare_s)
        self.apply_s = apply_s
        self.spans: list[tuple[str, float, float]] = []

    def prepare(self, jobs: Sequence[ClaimedJob]) -> list[Any]:
        started = time.monotonic()
        out = super().prepare(jobs)
        self.spans.append(("prepare", started, time.monotonic()))
        return out

    def apply(self, session: Session, job: ClaimedJob, prepared: Any) -> dict[str, Any]:
        started = time.monotonic()
        time.sleep(self.apply_s)
        result = super().apply(session, job, prepared)
        if job.payload.get("fail_write"):
            raise ValueError("this write cannot happen")
        self.spans.append(("apply", started, time.monotonic()))
        return result


def _events(engine: Engine, event_type: str) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text("SELECT payload->>'job' FROM events WHERE event_type = :t"),
                {"t": event_type},
            ).scalars()
        )


def test_the_loop_prepares_the_next_batch_while_the_last_one_is_written(engine: Engine) -> None:
    ids = _enqueue(engine, 6)
    handler = TimedHandler(prepare_s=0.1, apply_s=0.1)
    runner = JobRunner(
        sessions=make_sessionmaker(engine),
        handler=handler,
        config=RunnerConfig(batch_size=2, max_wait_ms=0, poll_s=0.05),
    )
    stop = threading.Event()
    loop = threading.Thread(target=runner.run, args=(stop,))
    loop.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(_events(engine, "test.done")) < 6:
        time.sleep(0.05)
    stop.set()
    loop.join(10)
    assert not loop.is_alive()
    assert sorted(_events(engine, "test.done")) == sorted(str(i) for i in ids)
    assert all(_status(engine, i)["status"] == "done" for i in ids)
    prepares = [s for s in handler.spans if s[0] == "prepare"]
    applies = [s for s in handler.spans if s[0] == "apply"]
    # Some batch was prepared while an earlier batch's writes were under way.
    assert any(p[1] < a[2] and a[1] < p[2] for p in prepares[1:] for a in applies)


def test_a_failing_write_rolls_back_only_its_own_job(engine: Engine) -> None:
    good = _enqueue(engine, 3)
    [bad] = _enqueue(engine, 1, fail_write=True)
    handler = TimedHandler(prepare_s=0.0, apply_s=0.0)
    runner = JobRunner(
        sessions=make_sessionmaker(engine),
        handler=handler,
        config=RunnerConfig(batch_size=8, max_wait_ms=0, poll_s=0.05),
    )
    outcome = runner.process(runner.gather(threading.Event()))
    assert (outcome.done, outcome.retried, outcome.failed) == (3, 1, 0)
    # Each good job's effect landed once, the failed write's not at all.
    assert sorted(_events(engine, "test.done")) == sorted(str(i) for i in good)
    row = _status(engine, bad)
    assert row["status"] == "queued" and "this write cannot happen" in row["error"]
