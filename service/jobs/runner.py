"""The worker loop: claim a batch, run the heavy part for the whole batch at once, then
commit every job's effects together with its completion, in one transaction per batch;
while that commits, the next batch is already being prepared.

Dynamic batching: after the first job arrives the loop keeps claiming until it has
``batch_size`` jobs or ``max_wait_ms`` have passed, so a burst is embedded in large
batches and a lone job is not kept waiting.

Graceful stop (``stop`` event, set by SIGTERM): a batch being gathered is released back
to the queue; a batch being processed is finished. Either way nothing is left leased.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from service.jobs import queue
from service.jobs.metrics import WorkerMetrics
from service.jobs.queue import ClaimedJob

log = logging.getLogger(__name__)


class PermanentJobError(Exception):
    """The job can never succeed (bad image, no face, deleted subject): fail it now,
    without retries. ``reason`` is a short stable code for metrics and reports."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class JobHandler(Protocol):
    """What the runner needs from a kind of job. ``prepare`` does the expensive work for a
    batch outside any transaction (decode, detect, embed); ``apply`` writes one job's
    effects inside the transaction that also completes it."""

    kinds: Sequence[str]

    def prepare(self, jobs: Sequence[ClaimedJob]) -> list[Any]:
        """One entry per job, in order: the prepared value, or the exception it raised."""
        ...

    def apply(self, session: Session, job: ClaimedJob, prepared: Any) -> dict[str, Any]:
        """Write the effects; returns the job's result. Returns the number of faces in the
        result under ``"faces"`` (default 1) for the throughput metrics."""
        ...

    def on_failed(self, session: Session, job: ClaimedJob, error: BaseException) -> None:
        """The job ended ``failed`` (no more retries): record that wherever the domain
        needs it, in the transaction that fails the job."""
        ...


@dataclass
class RunnerConfig:
    batch_size: int = 32
    max_wait_ms: float = 50.0
    lease_s: float = 60.0
    poll_s: float = 2.0
    worker_id: str = field(default_factory=lambda: f"worker-{uuid.uuid4().hex[:12]}")


@dataclass
class BatchOutcome:
    done: int = 0
    failed: int = 0
    retried: int = 0
    lost: int = 0


class JobRunner:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        handler: JobHandler,
        config: RunnerConfig,
        metrics: WorkerMetrics | None = None,
        wait_for_jobs: Callable[[float], bool] | None = None,
    ) -> None:
        self.sessions = sessions
        self.handler = handler
        self.config = config
        self.metrics = metrics or WorkerMetrics()
        # LISTEN-based wait; without one the runner sleeps (tests, or no notifications).
        self._wait = wait_for_jobs or (lambda timeout: bool(time.sleep(timeout)))
        self.kinds = list(handler.kinds)

    # -- claiming ---------------------------------------------------------------------

    def _claim(self, limit: int) -> list[ClaimedJob]:
        with self.sessions() as session:
            return queue.claim(
                session,
                worker_id=self.config.worker_id,
                kinds=self.kinds,
                limit=limit,
                lease_s=self.config.lease_s,
            )

    def _reclaim_and_measure(self) -> None:
        with self.sessions() as session:
            reclaimed = queue.reclaim_expired(session)
            depth = queue.queue_depth(session, self.kinds)
            oldest = queue.oldest_queued_seconds(session, self.kinds)
            session.commit()
        if reclaimed:
            log.warning("requeued %d jobs whose lease expired", reclaimed)
        self.metrics.queue_depth.set(depth)
        self.metrics.queue_oldest.set(oldest)

    def gather(self, stop: threading.Event) -> list[ClaimedJob]:
        """Claim up to ``batch_size`` jobs, waiting at most ``max_wait_ms`` after the first."""
        batch = self._claim(self.config.batch_size)
        if not batch:
            return []
        deadline = time.monotonic() + self.config.max_wait_ms / 1000
        while len(batch) < self.config.batch_size and not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            more = self._claim(self.config.batch_size - len(batch))
            if more:
                batch.extend(more)
            else:
                self._wait(min(left, 0.01))
        return batch

    # -- processing -------------------------------------------------------------------

    def _heartbeat(self, ids: list[uuid.UUID], done: threading.Event) -> None:
        while not done.wait(self.config.lease_s / 3):
            with self.sessions() as session:
                queue.extend_leases(session, ids, self.config.worker_id, self.config.lease_s)
                session.commit()

    def _prepare(self, batch: list[ClaimedJob]) -> _InFlight:
        """The heavy part, with the batch's leases kept alive from here until it is written."""
        started, finished = time.perf_counter(), threading.Event()
        beat = threading.Thread(
            target=self._heartbeat, args=([j.id for j in batch], finished), daemon=True
        )
        flight = _InFlight(batch, started, finished, beat)
        beat.start()
        try:
            flight.prepared = self.handler.prepare(batch)
        except Exception as exc:  # the whole batch failed to prepare: each job retries
            log.exception("batch preparation failed")
            flight.prepared = [exc] * len(batch)
        return flight

    def _write(self, flight: _InFlight) -> BatchOutcome:
        outcome = BatchOutcome()
        try:
            faces = self._finish_batch(flight.batch, flight.prepared, outcome)
        finally:
            flight.finished.set()
            flight.beat.join()
        elapsed = time.perf_counter() - flight.started
        self.metrics.batch_size.observe(len(flight.batch))
        self.metrics.faces.inc(faces)
        if elapsed > 0:
            self.metrics.faces_per_second.set(faces / elapsed)
        return outcome

    def process(self, batch: list[ClaimedJob]) -> BatchOutcome:
        return self._write(self._prepare(batch))

    def _finish_batch(
        self, batch: Sequence[ClaimedJob], prepared: Sequence[Any], outcome: BatchOutcome
    ) -> int:
        """Write every job's effects and completion in ONE transaction (one commit per batch,
        not per job). Each job row is locked and its lease checked first: a job taken over
        by another worker is skipped, so its effects land exactly once. Should any job's
        write fail, the batch is written again job by job, each in a savepoint, so that
        the failure rolls back only that job."""
        failures = [(j, v) for j, v in zip(batch, prepared, strict=True) if _failed(v)]
        ready = [(j, v) for j, v in zip(batch, prepared, strict=True) if not _failed(v)]
        done = self._apply_together(ready, outcome)
        if done is None:
            done = self._apply_one_by_one(ready, outcome, failures)
        outcome.done += len(done)
        self.metrics.jobs.labels("done").inc(len(done))
        for job, exc in failures:
            self._record_failure(job, exc, outcome)
        return sum(int(result.get("faces", 1)) for result in done)

    def _lost(self, job: ClaimedJob, outcome: BatchOutcome) -> None:
        outcome.lost += 1
        log.warning("lease on job %s was lost; another worker owns it", job.id)

    def _apply_together(
        self, ready: list[tuple[ClaimedJob, Any]], outcome: BatchOutcome
    ) -> list[dict[str, Any]] | None:
        """The common case, every write succeeds: one lock statement, the writes, one
        completion statement and one commit. None (and nothing written) if any write
        raised."""
        worker = self.config.worker_id
        results: list[tuple[uuid.UUID, dict[str, Any]]] = []
        with self.sessions() as session:
            owned = queue.lock_owned_many(session, [j.id for j, _ in ready], worker)
            try:
                for job, value in ready:
                    if job.id in owned:
                        results.append((job.id, self.handler.apply(session, job, value)))
                if queue.complete_many(session, worker, results) != len(results):
                    raise RuntimeError("a locked job could not be completed")
            except Exception:  # noqa: BLE001 - redone job by job, which records the reason
                session.rollback()
                return None
            session.commit()
        for job, _ in ready:
            if job.id not in owned:
                self._lost(job, outcome)
        return [result for _, result in results]

    def _apply_one_by_one(
        self,
        ready: list[tuple[ClaimedJob, Any]],
        outcome: BatchOutcome,
        failures: list[tuple[ClaimedJob, BaseException]],
    ) -> list[dict[str, Any]]:
        worker = self.config.worker_id
        done: list[dict[str, Any]] = []
        with self.sessions() as session:
            for job, value in ready:
                if not queue.lock_owned(session, job.id, worker):
                    self._lost(job, outcome)
                    continue
                try:
                    with session.begin_nested():
                        result = self.handler.apply(session, job, value)
                        queue.complete(session, job.id, worker, result)
                    done.append(result)
                except Exception as exc:  # noqa: BLE001 - recorded on the job below
                    failures.append((job, exc))
            session.commit()
        return done

    def _record_failure(self, job: ClaimedJob, exc: BaseException, outcome: BatchOutcome) -> None:
        permanent = isinstance(exc, PermanentJobError)
        reason = exc.reason if isinstance(exc, PermanentJobError) else type(exc).__name__
        detail = exc.detail if isinstance(exc, PermanentJobError) else f"{reason}: {exc}"
        if not permanent:
            log.warning("job %s attempt %d failed: %s", job.id, job.attempts, detail)
        with self.sessions() as session:
            status = queue.fail(
                session,
                job.id,
                self.config.worker_id,
                detail,
                permanent=permanent,
                result={"reason": reason},
            )
            if status == queue.FAILED:
                self.handler.on_failed(session, job, exc)
            session.commit()
        self.metrics.failures.labels(reason).inc()
        if status == queue.FAILED:
            outcome.failed += 1
            self.metrics.jobs.labels("failed").inc()
        elif status == queue.QUEUED:
            outcome.retried += 1
        else:
            outcome.lost += 1

    # -- the loop ---------------------------------------------------------------------

    def run_once(self, stop: threading.Event) -> int:
        """Gather and process one batch; returns its size (0: nothing was due)."""
        batch = self._next_batch(stop)
        if batch:
            self.process(batch)
        return len(batch)

    def _next_batch(self, stop: threading.Event) -> list[ClaimedJob]:
        batch = self.gather(stop)
        if batch and stop.is_set():
            with self.sessions() as session:
                queue.release(session, [j.id for j in batch], self.config.worker_id)
                session.commit()
            return []
        return batch

    def run(self, stop: threading.Event) -> None:
        """Batches overlap: while one batch's writes commit (Postgres' time), the next is
        already being decoded, detected and embedded (this process' CPU). At most one batch
        is being written, and it always finishes before the loop returns."""
        last_check = 0.0
        writing: Future[BatchOutcome] | None = None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-writer") as writer:
            try:
                while not stop.is_set():
                    now = time.monotonic()
                    if now - last_check >= self.config.poll_s:
                        self._reclaim_and_measure()
                        last_check = now
                    batch = self._next_batch(stop)
                    if not batch:
                        if writing is not None:
                            writing.result()
                            writing = None
                        if not stop.is_set():
                            self._wait(self.config.poll_s)
                        continue
                    flight = self._prepare(batch)
                    if writing is not None:
                        try:
                            writing.result()
                        except BaseException:
                            # Its leases lapse and another worker retries it.
                            flight.finished.set()
                            raise
                    writing = writer.submit(self._write, flight)
            finally:
                if writing is not None:
                    writing.result()


@dataclass
class _InFlight:
    """A batch between its preparation and its write."""

    batch: list[ClaimedJob]
    started: float
    finished: threading.Event
    beat: threading.Thread  # renews the batch's leases until ``finished`` is set
    prepared: Sequence[Any] = ()


def _failed(value: Any) -> bool:
    return isinstance(value, BaseException)
