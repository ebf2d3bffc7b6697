"""Right to erasure: a deleted face, subject or gallery loses its templates, its vectors
in every index and its stored images. Rows go in the caller's transaction; vectors in an
external index go through the outbox in that same transaction; images are deleted only
once the transaction has committed, so a rolled-back erasure loses nothing. Each erasure of a
subject or gallery is announced (``subject.deleted``, ``gallery.deleted``) in the same
transaction."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from retrieval.templates import enqueue_deletes
from service.core.request_context import current_request_id
from service.db.models import Face, Gallery, Subject
from service.db.session import after_commit
from service.domain.components import (
    Components,
    face_image_key,
    gallery_image_prefix,
    subject_image_prefix,
)
from service.domain.events import GALLERY_DELETED, SUBJECT_DELETED, announce


def _after_commit_drain(session: Session, components: Components) -> None:
    if components.index.external:
        after_commit(session, components.drain_outbox)


def erase_face(session: Session, components: Components, face: Face) -> None:
    enqueue_deletes(session.connection(), components.index, face_id=face.id)
    key = face.image_key
    session.execute(delete(Face).where(Face.id == face.id))
    after_commit(session, lambda: components.image_store.delete(key))
    _after_commit_drain(session, components)


def erase_subject(session: Session, components: Components, subject: Subject) -> int:
    enqueue_deletes(session.connection(), components.index, subject_id=subject.id)
    faces = (
        session.scalar(select(func.count()).select_from(Face).where(Face.subject_id == subject.id))
        or 0
    )
    prefix = subject_image_prefix(subject.gallery_id, subject.id)
    data = {
        "subject_id": str(subject.id),
        "external_id": subject.external_id,
        "gallery_id": str(subject.gallery_id),
        "faces_erased": faces,
        "request_id": current_request_id(),
    }
    session.execute(delete(Subject).where(Subject.id == subject.id))
    after_commit(session, lambda: components.image_store.delete_prefix(prefix))
    _after_commit_drain(session, components)
    announce(session, SUBJECT_DELETED, data, subject.gallery_id)
    return faces


def erase_gallery(session: Session, components: Components, gallery: Gallery) -> None:
    enqueue_deletes(session.connection(), components.index, gallery_id=gallery.id)
    prefix = gallery_image_prefix(gallery.id)
    session.execute(delete(Gallery).where(Gallery.id == gallery.id))
    after_commit(session, lambda: components.image_store.delete_prefix(prefix))
    _after_commit_drain(session, components)
    data = {"gallery_id": str(gallery.id), "request_id": current_request_id()}
    announce(session, GALLERY_DELETED, data, gallery.id)


__all__ = ["erase_face", "erase_gallery", "erase_subject", "face_image_key"]
