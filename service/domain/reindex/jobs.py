"""Model upgrades without downtime: re-embed a gallery's stored originals with a new model
into that model's index while the gallery keeps answering on its active model, then
switch atomically, roll back, and finally drop the old templates.

State lives in Postgres so that a reindex survives Ctrl-C and crashes:
``galleries.pending_model_id`` says a reindex to that model is under way (enrollment
then writes templates for both models), the templates already written for the new model
are the progress (a resumed run skips them), and one ``jobs`` row of kind ``reindex``
records the run: counts, the faces that failed and why, the final report.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

from indexing.errors import ModelUnavailable
from indexing.image_store import ImageStore, ImageStoreError
from indexing.types import Embedding, ModelSpec
from retrieval.base import TemplateRow, VectorIndex
from retrieval.templates import add_templates, ensure_model_index
from service.core.problems import Conflict, NotFound, Unprocessable
from service.db.model_rows import register_model
from service.domain.events import REINDEX_COMPLETED, announce

log = logging.getLogger(__name__)

REINDEX_KIND = "reindex"


@dataclass(frozen=True)
class StoredFace:
    """An enrolled face as the reindex sees it: where its original is and where the face
    was found in it at enrollment (to pick the same face if the photo has several)."""

    face_id: uuid.UUID
    subject_id: uuid.UUID
    image_key: str
    bbox: dict[str, float] | None
    landmarks: list[Any] | None


class Reembedder(Protocol):
    """Embeds stored originals with one model: one entry per face, in order, either the
    L2-normalised embedding or the exception that explains why there is none."""

    def __call__(
        self, faces: Sequence[tuple[StoredFace, bytes]], model_id: str
    ) -> list[Embedding | Exception]: ...


class ModelCatalog(Protocol):
    def spec(self, model_id: str) -> ModelSpec: ...


@dataclass
class Progress:
    total: int
    done: int = 0
    failed: int = 0


@dataclass
class RunSummary:
    job_id: uuid.UUID
    embedded: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    already_done: int = 0


class ReindexBusy(Conflict):
    """Another process is reindexing the same gallery right now."""


# -- starting and state ----------------------------------------------------------------


_GALLERY = (
    "SELECT id, active_model_id, pending_model_id, previous_model_id FROM galleries WHERE id = :id"
)


def gallery_row(conn: Connection, gallery_id: uuid.UUID, *, lock: bool = False) -> Any:
    query = _GALLERY + " FOR UPDATE" if lock else _GALLERY
    row = conn.execute(text(query), {"id": gallery_id}).first()
    if row is None:
        raise NotFound(f"no gallery {gallery_id}")
    return row


def _job_for(conn: Connection, gallery_id: uuid.UUID, to_model: str) -> uuid.UUID:
    """The open reindex job of (gallery, model), created on the first run."""
    found = conn.execute(
        text(
            "SELECT id FROM jobs WHERE kind = :kind AND gallery_id = :g"
            " AND payload->>'to_model' = :m AND status IN ('queued', 'running')"
            " ORDER BY created_at DESC LIMIT 1"
        ),
        {"kind": REINDEX_KIND, "g": gallery_id, "m": to_model},
    ).scalar()
    if found is not None:
        return uuid.UUID(str(found))
    job_id = uuid.uuid4()
    conn.execute(
        text(
            "INSERT INTO jobs (id, kind, status, payload, gallery_id, created_by, result)"
            " VALUES (:id, :kind, 'running', jsonb_build_object('to_model', CAST(:m AS text)),"
            " :g, 'cli', '{}'::jsonb)"
        ),
        {"id": job_id, "kind": REINDEX_KIND, "g": gallery_id, "m": to_model},
    )
    return job_id


def start(
    engine: Engine,
    index: VectorIndex,
    models: ModelCatalog,
    *,
    gallery_id: uuid.UUID,
    to_model: str,
) -> uuid.UUID:
    """Mark the gallery as reindexing to ``to_model`` (idempotent: resuming the same
    reindex is fine) and make sure the model's index exists. Returns the reindex job."""
    try:
        spec = models.spec(to_model)
    except ModelUnavailable as exc:
        raise Unprocessable(exc.detail) from exc
    with engine.begin() as conn:
        gallery = gallery_row(conn, gallery_id, lock=True)
        if gallery.active_model_id == to_model:
            raise Unprocessable(f"gallery {gallery_id} already uses {to_model}")
        if gallery.pending_model_id not in (None, to_model):
            raise Conflict(
                f"gallery {gallery_id} is being reindexed to {gallery.pending_model_id};"
                " finish and activate it, or cancel it, first"
            )
        register_model(conn, spec)
        ensure_model_index(conn, index, spec.id, spec.dim)
        conn.execute(
            text("UPDATE galleries SET pending_model_id = :m WHERE id = :id"),
            {"m": to_model, "id": gallery_id},
        )
        return _job_for(conn, gallery_id, to_model)


@contextmanager
def exclusive(engine: Engine, gallery_id: uuid.UUID) -> Iterator[None]:
    """One reindexer per gallery at a time (a session advisory lock, released on exit or
    when the process dies)."""
    with engine.connect() as conn:
        key = conn.execute(
            text("SELECT hashtextextended('faceprint-reindex:' || :g, 0)"), {"g": str(gallery_id)}
        ).scalar_one()
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar_one()
        conn.commit()
        if not got:
            raise ReindexBusy(f"gallery {gallery_id} is being reindexed by another process")
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()


# -- the run ---------------------------------------------------------------------------


def todo_count(conn: Connection, gallery_id: uuid.UUID, model_id: str) -> tuple[int, int]:
    row = conn.execute(
        text(
            "SELECT count(*) AS total, count(t.id) AS done FROM faces f"
            " LEFT JOIN templates t ON t.face_id = f.id AND t.model_id = :m"
            " WHERE f.gallery_id = :g AND f.status = 'ready'"
        ),
        {"g": gallery_id, "m": model_id},
    ).one()
    return int(row.total), int(row.done)


def _next_batch(
    conn: Connection, gallery_id: uuid.UUID, model_id: str, after: uuid.UUID | None, limit: int
) -> list[StoredFace]:
    rows = conn.execute(
        text(
            "SELECT f.id, f.subject_id, f.image_key, f.bbox, f.landmarks FROM faces f"
            " WHERE f.gallery_id = :g AND f.status = 'ready'"
            " AND (CAST(:after AS uuid) IS NULL OR f.id > CAST(:after AS uuid))"
            " AND NOT EXISTS (SELECT 1 FROM templates t"
            "   WHERE t.face_id = f.id AND t.model_id = :m)"
            " ORDER BY f.id LIMIT :limit"
        ),
        {"g": gallery_id, "m": model_id, "after": after, "limit": limit},
    ).all()
    return [StoredFace(r.id, r.subject_id, r.image_key, r.bbox, r.landmarks) for r in rows]


def _write(
    engine: Engine, index: VectorIndex, gallery_id: uuid.UUID, rows: list[TemplateRow]
) -> list[TemplateRow]:
    """Insert the batch in one transaction; if a face vanished meanwhile (deleted during
    the reindex) fall back to one transaction per row and skip the gone ones."""
    try:
        with engine.begin() as conn:
            add_templates(conn, index, rows)
        return rows
    except IntegrityError:
        pass
    written = []
    for row in rows:
        try:
            with engine.begin() as conn:
                add_templates(conn, index, [row])
            written.append(row)
        except IntegrityError:
            log.info("face %s was deleted or re-embedded during the reindex", row.face_id)
    return written


def _record(
    engine: Engine,
    job_id: uuid.UUID,
    summary: RunSummary,
    done: tuple[uuid.UUID, str] | None = None,
) -> None:
    """The job's progress; with ``done`` (gallery, model), the end of the run, announced."""
    with engine.begin() as conn:
        if done is not None:
            data = {"gallery_id": str(done[0]), "to_model": done[1], "job_id": str(job_id),
                    "embedded": summary.embedded, "failed": len(summary.failed)}  # fmt: skip
            announce(conn, REINDEX_COMPLETED, data, done[0])
        conn.execute(
            text(
                "UPDATE jobs SET result = COALESCE(result, '{}'::jsonb)"
                " || jsonb_build_object('failed', CAST(:failed AS jsonb)), updated_at = now()"
                " WHERE id = :id"
            ),
            {"id": job_id, "failed": _json(summary.failed)},
        )


def _json(value: Any) -> str:
    return json.dumps(value)


def run(
    engine: Engine,
    index: VectorIndex,
    store: ImageStore,
    reembed: Reembedder,
    *,
    gallery_id: uuid.UUID,
    batch_size: int = 64,
    threads: int = 1,
    on_progress: Callable[[Progress], None] | None = None,
) -> RunSummary:
    """Embed every ready face of the gallery that has no template for the pending model
    yet. Safe to interrupt at any point and to run again: it continues where it stopped.
    ``threads`` > 1 embeds that many batches at once (the pipeline is thread-safe and its
    runtimes release the GIL): faster, at the cost of CPU that verify would use."""
    with engine.connect() as conn:
        gallery = gallery_row(conn, gallery_id)
    model_id = gallery.pending_model_id
    if model_id is None:
        raise Unprocessable(f"gallery {gallery_id} has no reindex under way; start one first")
    with exclusive(engine, gallery_id), ThreadPoolExecutor(max_workers=threads) as pool:
        with engine.begin() as conn:
            job_id = _job_for(conn, gallery_id, model_id)
            total, done = todo_count(conn, gallery_id, model_id)
        summary = RunSummary(job_id=job_id, already_done=done)
        progress = Progress(total=total, done=done)
        if on_progress:
            on_progress(progress)
        after: uuid.UUID | None = None
        while True:
            with engine.connect() as conn:
                batch = _next_batch(conn, gallery_id, model_id, after, batch_size * threads)
            if not batch:
                break
            after = batch[-1].face_id
            chunks = [batch[i : i + batch_size] for i in range(0, len(batch), batch_size)]
            results = pool.map(
                lambda chunk: _embed_batch(store, reembed, gallery_id, model_id, chunk), chunks
            )
            rows: list[TemplateRow] = []
            for chunk, (chunk_rows, failures) in zip(chunks, results, strict=True):
                rows.extend(chunk_rows)
                for face in chunk:
                    summary.failed.pop(str(face.face_id), None)
                summary.failed.update(failures)
            written = _write(engine, index, gallery_id, rows)
            summary.embedded += len(written)
            progress.done += len(written)
            progress.failed = len(summary.failed)
            _record(engine, job_id, summary)
            if on_progress:
                on_progress(progress)
        _record(engine, job_id, summary, done=(gallery_id, model_id))
    return summary


def _embed_batch(
    store: ImageStore,
    reembed: Reembedder,
    gallery_id: uuid.UUID,
    model_id: str,
    batch: list[StoredFace],
) -> tuple[list[TemplateRow], dict[str, str]]:
    """Template rows for the faces that embedded, and why the others did not."""
    failed: dict[str, str] = {}
    loaded: list[tuple[StoredFace, bytes]] = []
    for face in batch:
        try:
            loaded.append((face, store.get(face.image_key)))
        except ImageStoreError as exc:
            failed[str(face.face_id)] = f"original unavailable: {exc}"
    results = reembed(loaded, model_id) if loaded else []
    rows: list[TemplateRow] = []
    for (face, _), result in zip(loaded, results, strict=True):
        if isinstance(result, Exception):
            detail = getattr(result, "detail", None) or str(result)
            failed[str(face.face_id)] = f"{type(result).__name__}: {detail}"
            continue
        rows.append(
            TemplateRow(
                id=uuid.uuid4(),
                face_id=face.face_id,
                subject_id=face.subject_id,
                gallery_id=gallery_id,
                model_id=model_id,
                embedding=np.asarray(result, dtype=np.float32),
            )
        )
    return rows, failed


# -- switching ---------------------------------------------------------------------------
