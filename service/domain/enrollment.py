"""Enrollment: an uploaded photo becomes a stored original, a face row and one template
per model the gallery needs. The API (sync and async), the worker and `faceprint enroll`
all go through these functions.

The work is split in two so that CPU and database steps can run where they belong:
:func:`analyze_for_enrollment` (CPU only, no database) and :func:`record_enrollment`
(database and image store, in the caller's transaction)."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from indexing.face_choice import FaceChoice, FaceSelector, select_enrollment_face
from indexing.pipeline import AnalyzedFace
from retrieval.base import TemplateRow
from retrieval.ranking import search_subjects
from retrieval.templates import add_templates
from service.core.principal import Principal
from service.core.problems import Conflict
from service.core.request_context import current_request_id
from service.db.models import Face, Gallery, Subject, Template
from service.db.session import after_commit, on_rollback
from service.domain.audit import record
from service.domain.components import Components, face_image_key
from service.domain.events import ENROLLMENT_COMPLETED, ENROLLMENT_FAILED, announce


class DuplicateFace(Conflict):
    slug, title = "duplicate-face", "Photo already enrolled"


class DuplicateIdentity(Conflict):
    slug, title = "duplicate-identity", "Face already enrolled as another subject"


@dataclass(frozen=True)
class Enrolled:
    face: Face
    model_ids: list[str]


def gallery_model_ids(gallery: Gallery) -> list[str]:
    """Models a new enrollment must be embedded with: the active one, and during a
    reindex the pending one too, so the new index misses nothing."""
    ids = [gallery.active_model_id]
    if gallery.pending_model_id and gallery.pending_model_id not in ids:
        ids.append(gallery.pending_model_id)
    return ids


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def analyze_for_enrollment(
    components: Components,
    image: bytes,
    *,
    model_ids: list[str],
    face: FaceSelector,
    check_quality: bool = True,
) -> FaceChoice[AnalyzedFace]:
    """Decode, detect and embed; the face ``face`` selects (by default the one that
    dominates the photo), of enrollable quality, and the others found. Raises the
    pipeline's typed errors."""
    faces = components.pipeline.analyze(image, model_ids=model_ids)
    return select_enrollment_face(faces, face, check_quality=check_quality)


def other_faces(choice: FaceChoice[AnalyzedFace]) -> list[dict[str, float]]:
    """The boxes of the faces found but not used, most prominent first."""
    return [f.bbox.as_dict() for f in choice.others]


def check_identity_unique(
    session: Session,
    components: Components,
    gallery: Gallery,
    subject_id: uuid.UUID,
    analyzed: AnalyzedFace,
) -> None:
    """``?dedupe=true``: refuse a face that matches another subject of the gallery at the
    model's threshold (one person enrolled under two identities, the check KYC runs)."""
    model_id = gallery.active_model_id
    vector = analyzed.embeddings.get(model_id)
    if vector is None:
        return
    threshold = components.pipeline.spec(model_id).threshold
    hits = search_subjects(
        session.connection(), components.index, vector, gallery_id=gallery.id,
        model_id=model_id, k=2, threshold=threshold,
    )  # fmt: skip
    other = next((h for h in hits if h.subject_id != subject_id), None)
    if other is not None:
        raise DuplicateIdentity(
            f"this face matches subject {other.subject_id} of the gallery (similarity "
            f"{other.similarity:.4f}, threshold {threshold})",
            subject_id=str(other.subject_id),
            similarity=round(float(other.similarity), 4),
        )


def check_duplicate(session: Session, subject: Subject, digest: str) -> None:
    existing = session.scalar(
        select(Face.id).where(Face.subject_id == subject.id, Face.image_sha256 == digest)
    )
    if existing is not None:
        raise DuplicateFace(
            f"this photo is already enrolled for the subject as face {existing}",
            face_id=str(existing),
        )


def face_metadata(face: AnalyzedFace) -> dict[str, object]:
    return {
        "bbox": face.bbox.as_dict(),
        "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in face.landmarks],
        "quality": face.quality.as_dict(),
        "quality_score": float(face.quality.score),
    }


def write_templates(
    session: Session, components: Components, face: Face, analyzed: AnalyzedFace
) -> list[str]:
    rows = [
        TemplateRow(
            id=uuid.uuid4(),
            face_id=face.id,
            subject_id=face.subject_id,
            gallery_id=face.gallery_id,
            model_id=model_id,
            embedding=vector,
        )
        for model_id, vector in analyzed.embeddings.items()
    ]
    add_templates(session.connection(), components.index, rows)
    if components.index.external:
        after_commit(session, components.drain_outbox)
    return [r.model_id for r in rows]


def _store_original(
    session: Session,
    components: Components,
    *,
    gallery: Gallery,
    subject: Subject,
    image: bytes,
    status: str,
    **analysis: Any,
) -> Face:
    """The original in the image store, then its face row (flushed, not committed). The
    image is written first: a face row never points at a missing original."""
    digest = sha256(image)
    check_duplicate(session, subject, digest)
    face_id = uuid.uuid4()
    key = face_image_key(gallery.id, subject.id, face_id)
    components.image_store.put(key, image)
    on_rollback(session, lambda: components.image_store.delete(key))
    face = Face(
        id=face_id,
        subject_id=subject.id,
        gallery_id=gallery.id,
        image_key=key,
        image_sha256=digest,
        status=status,
        **analysis,
    )
    session.add(face)
    session.flush()
    return face


def record_enrollment(
    session: Session,
    components: Components,
    *,
    principal: Principal | None,
    gallery: Gallery,
    subject: Subject,
    image: bytes,
    analyzed: AnalyzedFace,
) -> Enrolled:
    """Store the original, then the face row and its templates in this transaction."""
    meta = face_metadata(analyzed)
    face = _store_original(
        session, components, gallery=gallery, subject=subject, image=image,
        status="ready", bbox=meta["bbox"], landmarks=meta["landmarks"],
        quality=meta["quality"], quality_score=meta["quality_score"],
    )  # fmt: skip
    model_ids = write_templates(session, components, face, analyzed)
    announce_enrolled(session, face, model_ids)
    record(
        session,
        actor=principal,
        action="face.enroll",
        target_type="face",
        target_id=str(face.id),
        details={"subject_id": str(subject.id), "models": model_ids},
    )
    return Enrolled(face=face, model_ids=model_ids)


def store_pending(
    session: Session,
    components: Components,
    *,
    principal: Principal | None,
    gallery: Gallery,
    subject: Subject,
    image: bytes,
) -> Face:
    """The first half of an async enrollment: keep the original and a ``pending`` face
    row; the worker analyses it and calls :func:`complete_pending`."""
    face = _store_original(
        session, components, gallery=gallery, subject=subject, image=image, status="pending"
    )
    record(
        session,
        actor=principal,
        action="face.enroll_async",
        target_type="face",
        target_id=str(face.id),
        details={"subject_id": str(subject.id)},
    )
    return face


def announce_enrolled(
    session: Session, face: Face, model_ids: list[str], job_id: uuid.UUID | None = None
) -> None:
    """``enrollment.completed``, in the transaction that wrote the face's templates."""
    data = {
        "face_id": str(face.id),
        "subject_id": str(face.subject_id),
        "gallery_id": str(face.gallery_id),
        "job_id": str(job_id) if job_id else None,
        "model_ids": model_ids,
        "quality_score": face.quality_score,
        "request_id": current_request_id(),
    }
    announce(session, ENROLLMENT_COMPLETED, data, face.gallery_id)


def complete_pending(
    session: Session,
    components: Components,
    face: Face,
    analyzed: AnalyzedFace,
    job_id: uuid.UUID | None = None,
) -> list[str]:
    """The second half of an async enrollment: write what the analysis found, and
    announce it."""
    meta = face_metadata(analyzed)
    face.bbox = meta["bbox"]  # type: ignore[assignment]
    face.landmarks = meta["landmarks"]  # type: ignore[assignment]
    face.quality = meta["quality"]  # type: ignore[assignment]
    face.quality_score = meta["quality_score"]  # type: ignore[assignment]
    face.status = "ready"
    existing = set(
        session.scalars(select(Template.model_id).where(Template.face_id == face.id)).all()
    )
    analyzed.embeddings = {m: v for m, v in analyzed.embeddings.items() if m not in existing}
    session.flush()
    written = write_templates(session, components, face, analyzed)
    announce_enrolled(session, face, face_model_ids(session, face), job_id)
    return written


def face_model_ids(session: Session, face: Face) -> list[str]:
    return sorted(
        session.scalars(select(Template.model_id).where(Template.face_id == face.id)).all()
    )


def fail_pending(
    session: Session, face: Face, reason: str, job_id: uuid.UUID | None = None
) -> None:
    """An async enrollment that cannot succeed: the face is marked failed and
    ``enrollment.failed`` announced (the reason code only, never the image)."""
    face.status = "failed"
    face.quality = {"error": reason}
    session.flush()
    data = {
        "face_id": str(face.id),
        "subject_id": str(face.subject_id),
        "gallery_id": str(face.gallery_id),
        "job_id": str(job_id) if job_id else None,
        "reason": reason,
    }
    announce(session, ENROLLMENT_FAILED, data, face.gallery_id)
