"""Right to erasure: a deleted face, subject or gallery loses its templates, its vectors
in every index and its stored images. Rows go in the caller's transaction; vectors in an
external index go through the outbox in that same transaction; images are deleted only
once the transaction has committed, so a rolled-back erasure loses nothing. Each erasure of a
subject or gallery is announced (``subject.deleted``, ``gallery.deleted``) in the same
transaction.

History rows stay (they are the audit trail of decisions) but lose what identifies the
person: a subject's stored probe images (of the verifies that claimed it and the
searches it topped) are deleted, and its external id and display name are removed from
the rows and from every search's ``candidates``."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session

from retrieval.templates import enqueue_deletes
from service.core.request_context import current_request_id
from service.db.models import Face, Gallery, Subject, Verification
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


@dataclass(frozen=True)
class Erased:
    """What one erasure removed, for the audit entry."""

    faces_erased: int
    probe_images_erased: int
    history_rows_anonymised: int
    candidate_entries_anonymised: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


# Each candidate naming the subject loses its names; the list keeps its order. The
# gallery condition lets the (gallery_id, created_at) index narrow the scan.
_ANONYMISE_CANDIDATES = text(
    "UPDATE verifications SET candidates = ("
    "  SELECT jsonb_agg(CASE WHEN c ->> 'subject_id' = CAST(:subject AS text)"
    "    THEN c - 'display_name' - 'external_id' ELSE c END ORDER BY i)"
    "  FROM jsonb_array_elements(candidates) WITH ORDINALITY AS t(c, i))"
    " WHERE gallery_id = :gallery AND candidates @> jsonb_build_array("
    "   jsonb_build_object('subject_id', CAST(:subject AS text)))"
    " RETURNING id"
)
# A whole gallery: every row of it loses its names and probe keys (the probe images
# themselves go with the gallery's prefix).
_ANONYMISE_GALLERY = text(
    "UPDATE verifications SET probe_image_key = NULL, external_id = NULL,"
    " candidates = CASE WHEN candidates IS NULL THEN NULL ELSE COALESCE(("
    "  SELECT jsonb_agg(c - 'display_name' - 'external_id' ORDER BY i)"
    "  FROM jsonb_array_elements(candidates) WITH ORDINALITY AS t(c, i)), '[]'::jsonb) END"
    " WHERE gallery_id = :gallery"
    " RETURNING id"
)


def _erase_history_traces(
    session: Session, components: Components, gallery_id: uuid.UUID, subject_id: uuid.UUID
) -> tuple[int, int, int]:
    """(probe images deleted, rows anonymised, candidate entries anonymised)."""
    owned = (Verification.gallery_id == gallery_id, Verification.subject_id == subject_id)
    probe_keys = [
        k
        for k in session.scalars(
            select(Verification.probe_image_key).where(
                *owned, Verification.probe_image_key.is_not(None)
            )
        ).all()
        if k
    ]
    rows = session.execute(
        update(Verification)
        .where(*owned)
        .values(probe_image_key=None, external_id=None)
        .returning(Verification.id)
    ).all()
    params = {"gallery": gallery_id, "subject": str(subject_id)}
    candidates = session.execute(_ANONYMISE_CANDIDATES, params).all()

    def delete_probes() -> None:
        for key in probe_keys:
            components.image_store.delete(key)

    after_commit(session, delete_probes)
    return len(probe_keys), len(rows), len(candidates)


def erase_subject(session: Session, components: Components, subject: Subject) -> Erased:
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
    probes, rows, candidates = _erase_history_traces(
        session, components, subject.gallery_id, subject.id
    )
    session.execute(delete(Subject).where(Subject.id == subject.id))
    after_commit(session, lambda: components.image_store.delete_prefix(prefix))
    _after_commit_drain(session, components)
    announce(session, SUBJECT_DELETED, data, subject.gallery_id)
    return Erased(faces, probes, rows, candidates)


def erase_gallery(session: Session, components: Components, gallery: Gallery) -> int:
    """Returns how many history rows were anonymised."""
    enqueue_deletes(session.connection(), components.index, gallery_id=gallery.id)
    rows = session.execute(_ANONYMISE_GALLERY, {"gallery": gallery.id}).all()
    prefix = gallery_image_prefix(gallery.id)
    session.execute(delete(Gallery).where(Gallery.id == gallery.id))
    after_commit(session, lambda: components.image_store.delete_prefix(prefix))
    _after_commit_drain(session, components)
    data = {"gallery_id": str(gallery.id), "request_id": current_request_id()}
    announce(session, GALLERY_DELETED, data, gallery.id)
    return len(rows)


__all__ = ["Erased", "erase_face", "erase_gallery", "erase_subject", "face_image_key"]
