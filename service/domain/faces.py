"""Face records of a subject: enroll (sync or through the worker), list, read, erase."""

from __future__ import annotations

import uuid
from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from indexing.face_choice import FaceSelector
from service.core.principal import Principal
from service.core.problems import NotFound
from service.db.models import Face, Gallery, Template
from service.db.pagination import page, paginate
from service.domain import enrollment
from service.domain.audit import record
from service.domain.components import Components
from service.domain.erasure import erase_face
from service.domain.schemas import JobAccepted
from service.domain.subjects import gallery_and_subject
from service.jobs import queue

# The job the worker runs for `?async=true`: payload {"face_id", "face" (a
# FaceSelector's text), "check_quality", "dedupe"}.
ENROLL_JOB = "enroll_face"


def enroll_sync(
    session: Session,
    components: Components,
    *,
    principal: Principal,
    gallery_id: uuid.UUID,
    subject_id: uuid.UUID,
    image: bytes,
    face: FaceSelector,
    check_quality: bool = True,
    dedupe: bool = False,
) -> tuple[Face, list[str], str, list[dict[str, float]]]:
    """Runs in a worker thread: lookups first (404 before any CPU work), then analysis,
    then the writes, committed here so the response reports what is stored."""
    gallery, subject = gallery_and_subject(session, principal, gallery_id, subject_id)
    model_ids = enrollment.gallery_model_ids(gallery)
    enrollment.check_duplicate(session, subject, enrollment.sha256(image))
    choice = enrollment.analyze_for_enrollment(
        components, image, model_ids=model_ids, face=face, check_quality=check_quality
    )
    if dedupe:
        enrollment.check_identity_unique(session, components, gallery, subject.id, choice.face)
    enrolled = enrollment.record_enrollment(
        session,
        components,
        principal=principal,
        gallery=gallery,
        subject=subject,
        image=image,
        analyzed=choice.face,
    )
    session.commit()
    return (
        enrolled.face,
        enrolled.model_ids,
        gallery.active_model_id,
        enrollment.other_faces(choice),
    )


def enroll_async(
    session: Session,
    components: Components,
    *,
    principal: Principal,
    gallery_id: uuid.UUID,
    subject_id: uuid.UUID,
    image: bytes,
    face: FaceSelector,
    check_quality: bool = True,
    dedupe: bool = False,
) -> JobAccepted:
    gallery, subject = gallery_and_subject(session, principal, gallery_id, subject_id)
    # Reject what cannot be an image before accepting the job (cheap: no detection).
    components.pipeline.decode(image)
    row = enrollment.store_pending(
        session, components, principal=principal, gallery=gallery, subject=subject, image=image
    )
    job_id = queue.enqueue(
        session,
        kind=ENROLL_JOB,
        payload={
            "face_id": str(row.id),
            "face": face.as_text(),
            "check_quality": check_quality,
            "dedupe": dedupe,
        },
        gallery_id=gallery.id,
        created_by=f"{principal.kind}:{principal.id}",
    )
    session.commit()
    return JobAccepted(job_id=job_id, status=queue.QUEUED, face_id=row.id)


def _model_ids(session: Session, face_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    out: dict[uuid.UUID, list[str]] = defaultdict(list)
    rows = session.execute(
        select(Template.face_id, Template.model_id).where(Template.face_id.in_(face_ids))
    ).all()
    for face_id, model_id in rows:
        out[face_id].append(model_id)
    return out


def list_page(
    session: Session,
    principal: Principal,
    gallery_id: uuid.UUID,
    subject_id: uuid.UUID,
    *,
    limit: int,
    cursor: str | None,
) -> tuple[list[tuple[Face, list[str]]], str | None, str]:
    gallery, _ = gallery_and_subject(session, principal, gallery_id, subject_id)
    query = paginate(
        select(Face).where(Face.subject_id == subject_id),
        created_col=Face.created_at, id_col=Face.id, limit=limit, cursor=cursor,
    )  # fmt: skip
    rows, next_cursor = page(session.scalars(query).all(), limit)
    models = _model_ids(session, [r.id for r in rows])
    return [(r, sorted(models.get(r.id, []))) for r in rows], next_cursor, gallery.active_model_id


def _get(
    session: Session,
    principal: Principal,
    gallery_id: uuid.UUID,
    subject_id: uuid.UUID,
    face_id: uuid.UUID,
) -> tuple[Gallery, Face]:
    gallery, _ = gallery_and_subject(session, principal, gallery_id, subject_id)
    face = session.get(Face, face_id)
    if face is None or face.subject_id != subject_id:
        raise NotFound(f"no face {face_id} for subject {subject_id}")
    return gallery, face


def face_in_subject(
    session: Session,
    principal: Principal,
    gallery_id: uuid.UUID,
    subject_id: uuid.UUID,
    face_id: uuid.UUID,
) -> Face:
    """The face, when the caller sees its gallery and it belongs to that subject."""
    return _get(session, principal, gallery_id, subject_id, face_id)[1]


def get(
    session: Session,
    principal: Principal,
    gallery_id: uuid.UUID,
    subject_id: uuid.UUID,
    face_id: uuid.UUID,
) -> tuple[Face, list[str], str]:
    gallery, face = _get(session, principal, gallery_id, subject_id, face_id)
    return face, sorted(_model_ids(session, [face.id]).get(face.id, [])), gallery.active_model_id


def delete(
    session: Session,
    components: Components,
    principal: Principal,
    gallery_id: uuid.UUID,
    subject_id: uuid.UUID,
    face_id: uuid.UUID,
) -> None:
    _, face = _get(session, principal, gallery_id, subject_id, face_id)
    erase_face(session, components, face)
    record(
        session,
        actor=principal,
        action="face.erase",
        target_type="face",
        target_id=str(face_id),
        details={"subject_id": str(subject_id)},
    )
