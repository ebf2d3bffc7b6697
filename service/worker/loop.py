"""The embedding worker: ``enroll`` jobs (``?async=true`` enrollment and ``faceprint
enroll``) are claimed in batches, their originals read from the image store, faces
detected and embedded in one batched pipeline call, and each job's face and templates
written by the same service function the synchronous API uses, in the transaction that
completes the job (so a job's effects land exactly once).
"""

from __future__ import annotations

import logging
import signal
import threading
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import start_http_server
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from indexing.errors import FaceError, ImageError, LowQuality, MultipleFaces, NoFace
from indexing.face_choice import BadFaceSelector, FaceSelector, select_enrollment_face
from indexing.image_store import ImageStoreError
from indexing.pipeline import AnalyzedFace, FacePipeline
from service.db.models import Face, Gallery
from service.domain.components import Components
from service.domain.enrollment import (
    DuplicateIdentity,
    check_identity_unique,
    complete_pending,
    fail_pending,
    gallery_model_ids,
)
from service.domain.faces import ENROLL_JOB
from service.domain.webhooks import metrics as webhook_metrics
from service.jobs.metrics import WorkerMetrics
from service.jobs.notify import JobListener
from service.jobs.queue import ClaimedJob
from service.jobs.runner import JobRunner, PermanentJobError, RunnerConfig

log = logging.getLogger(__name__)


def failure_reason(exc: BaseException) -> str:
    """A short stable code for reports and metrics."""
    if isinstance(exc, NoFace):
        return "no_face"
    if isinstance(exc, MultipleFaces):
        return "multiple_faces"
    if isinstance(exc, LowQuality):
        return "low_quality"
    if isinstance(exc, ImageError):
        return "bad_image"
    if isinstance(exc, FaceError):
        return "face_error"
    if isinstance(exc, ImageStoreError):
        return "original_unavailable"
    return type(exc).__name__


def analyze_batch(
    pipeline: FacePipeline, items: Sequence[bytes], model_ids: Sequence[str]
) -> list[list[AnalyzedFace] | ImageError]:
    """``analyze_many`` for the batch: each entry is the faces found, largest first, or
    the typed error of that image alone (one bad photo never fails its neighbours)."""
    return pipeline.analyze_many(items, model_ids=model_ids) if items else []


@dataclass(frozen=True)
class PreparedEnrollment:
    face_id: uuid.UUID
    analyzed: AnalyzedFace
    model_ids: tuple[str, ...]
    other_faces: list[dict[str, float]]
    dedupe: bool = False


@dataclass(frozen=True)
class _Pending:
    job: ClaimedJob
    face_id: uuid.UUID
    image_key: str
    model_ids: tuple[str, ...]
    face: FaceSelector
    check_quality: bool
    dedupe: bool


def job_face_selector(payload: dict[str, Any]) -> FaceSelector:
    """The job's ``face``; jobs queued before it existed carry ``allow_multiple``
    (true: the largest face; false: exactly one)."""
    if "face" in payload:
        return FaceSelector.parse(str(payload["face"]))
    return FaceSelector(mode="largest" if payload.get("allow_multiple") else "single")


def _permanent(exc: Exception) -> PermanentJobError:
    detail = getattr(exc, "detail", None) or str(exc)
    return PermanentJobError(failure_reason(exc), detail)


class EnrollmentHandler:
    """``enroll_face`` jobs, written by :func:`service.domain.faces.enroll_async` (payload
    ``{"face_id", "face"}``, optionally ``"check_quality"``): the pending face's
    original is analysed in a batch and :func:`service.domain.enrollment.complete_pending` writes
    the result."""

    kinds = (ENROLL_JOB,)

    def __init__(self, components: Components) -> None:
        self.components = components

    def _load(self, jobs: Sequence[ClaimedJob]) -> list[_Pending | Exception]:
        ids = [uuid.UUID(j.payload["face_id"]) for j in jobs]
        with Session(self.components.engine) as session:
            rows = session.execute(
                select(Face.id, Face.image_key, Gallery.active_model_id, Gallery.pending_model_id)
                .join(Gallery, Gallery.id == Face.gallery_id)
                .where(Face.id.in_(ids))
            ).all()
        found = {r.id: r for r in rows}
        out: list[_Pending | Exception] = []
        for job, face_id in zip(jobs, ids, strict=True):
            row = found.get(face_id)
            if row is None:
                out.append(PermanentJobError("face_deleted", f"face {face_id} no longer exists"))
                continue
            models = tuple(m for m in (row.active_model_id, row.pending_model_id) if m)
            try:
                selector = job_face_selector(job.payload)
            except BadFaceSelector as exc:
                out.append(PermanentJobError("bad_request", str(exc)))
                continue
            check = bool(job.payload.get("check_quality", True))
            dedupe = bool(job.payload.get("dedupe", False))
            out.append(_Pending(job, face_id, row.image_key, models, selector, check, dedupe))
        return out

    def prepare(self, jobs: Sequence[ClaimedJob]) -> list[Any]:
        loaded = self._load(jobs)
        images: dict[int, bytes] = {}
        results: list[Any] = list(loaded)
        for i, item in enumerate(loaded):
            if isinstance(item, _Pending):
                try:
                    images[i] = self.components.image_store.get(item.image_key)
                except ImageStoreError as exc:
                    results[i] = _permanent(exc)
        # One batched pipeline call per distinct model set (usually one for the batch).
        groups: dict[tuple[str, ...], list[int]] = defaultdict(list)
        for i in images:
            groups[loaded[i].model_ids].append(i)  # type: ignore[union-attr]
        for model_ids, members in groups.items():
            analyzed = analyze_batch(
                self.components.pipeline, [images[i] for i in members], model_ids
            )
            for i, faces in zip(members, analyzed, strict=True):
                results[i] = self._select(loaded[i], faces)  # type: ignore[arg-type]
        return results

    @staticmethod
    def _select(item: _Pending, faces: list[AnalyzedFace] | ImageError) -> Any:
        if isinstance(faces, Exception):
            return _permanent(faces)
        try:
            choice = select_enrollment_face(faces, item.face, check_quality=item.check_quality)
        except FaceError as exc:
            return _permanent(exc)
        others = [f.bbox.as_dict() for f in choice.others]
        return PreparedEnrollment(item.face_id, choice.face, item.model_ids, others, item.dedupe)

    def apply(self, session: Session, job: ClaimedJob, prepared: Any) -> dict[str, Any]:
        assert isinstance(prepared, PreparedEnrollment)
        face = session.get(Face, prepared.face_id, with_for_update=True)
        if face is None:
            raise PermanentJobError("face_deleted", f"face {prepared.face_id} no longer exists")
        gallery = session.get(Gallery, face.gallery_id)
        assert gallery is not None  # the face's foreign key cascades from it
        needed = gallery_model_ids(gallery)
        missing = [m for m in needed if m not in prepared.analyzed.embeddings]
        if missing:
            # A reindex started since the batch was embedded: retry with the new models.
            raise RuntimeError(f"gallery now also needs {', '.join(missing)}; will re-embed")
        prepared.analyzed.embeddings = {
            m: v for m, v in prepared.analyzed.embeddings.items() if m in needed
        }
        if prepared.dedupe:
            try:
                check_identity_unique(
                    session, self.components, gallery, face.subject_id, prepared.analyzed
                )
            except DuplicateIdentity as exc:
                raise PermanentJobError("duplicate_identity", exc.detail) from exc
        # complete_pending announces enrollment.completed in this transaction.
        complete_pending(session, self.components, face, prepared.analyzed, job.id)
        payload = {
            "job_id": str(job.id),
            "face_id": str(face.id),
            "subject_id": str(face.subject_id),
            "gallery_id": str(face.gallery_id),
            "model_ids": needed,
            "bbox": face.bbox,
            "quality_score": face.quality_score,
            "other_faces": prepared.other_faces,
        }
        return {**payload, "faces": 1}

    def on_failed(self, session: Session, job: ClaimedJob, error: BaseException) -> None:
        face = session.get(Face, uuid.UUID(job.payload["face_id"]), with_for_update=True)
        if face is None:
            return
        reason = error.reason if isinstance(error, PermanentJobError) else type(error).__name__
        fail_pending(session, face, reason, job.id)  # announces enrollment.failed


def install_stop_signals(stop: threading.Event) -> None:
    """SIGTERM and SIGINT ask the loop to stop: the batch in hand is finished (or, while
    still being gathered, released) and the process exits."""

    def handler(signum: int, _frame: object) -> None:
        log.info("signal %d: finishing the current batch, then stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@dataclass
class WorkerOptions:
    batch_size: int = 32
    max_wait_ms: float = 50.0
    lease_s: float = 120.0
    poll_s: float = 2.0
    metrics_port: int | None = None
    worker_id: str | None = None


def execution_providers() -> list[str]:
    """CUDA when this onnxruntime build offers it (onnxruntime-gpu), CPU otherwise; the
    ONNX embedders choose the same way."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def run_worker(
    components: Components, database_url: str, options: WorkerOptions, stop: threading.Event
) -> JobRunner:
    """Work through enrollment jobs until ``stop`` is set. LISTEN wakes the loop as soon
    as a job is committed; it also polls every ``poll_s`` for retries and dead leases."""
    metrics = WorkerMetrics()
    if options.metrics_port is not None:
        webhook_metrics.register_into(metrics.registry)
        start_http_server(options.metrics_port, registry=metrics.registry)
    config = RunnerConfig(
        batch_size=options.batch_size,
        max_wait_ms=options.max_wait_ms,
        lease_s=options.lease_s,
        poll_s=options.poll_s,
    )
    if options.worker_id:
        config.worker_id = options.worker_id
    listener = JobListener(database_url)
    runner = JobRunner(
        sessions=sessionmaker(bind=components.engine, expire_on_commit=False),
        handler=EnrollmentHandler(components),
        config=config,
        metrics=metrics,
        wait_for_jobs=listener.wait,
    )
    log.info(
        "worker %s: batches of up to %d jobs or %.0f ms, providers %s",
        config.worker_id,
        config.batch_size,
        config.max_wait_ms,
        ", ".join(execution_providers()),
    )
    try:
        runner.run(stop)
    finally:
        listener.close()
    return runner
