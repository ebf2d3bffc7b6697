"""Subjects (people) inside a gallery."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.core.principal import Principal
from service.core.problems import Conflict, NotFound
from service.db.models import Face, Gallery, Subject
from service.db.pagination import page, paginate
from service.domain.audit import record
from service.domain.components import Components
from service.domain.erasure import erase_subject
from service.domain.galleries import get_visible


def gallery_and_subject(
    session: Session, principal: Principal, gallery_id: uuid.UUID, subject_id: uuid.UUID
) -> tuple[Gallery, Subject]:
    """The gallery (if this caller may see it) and the subject in it, or a 404."""
    gallery = get_visible(session, principal, gallery_id)
    subject = session.get(Subject, subject_id)
    if subject is None or subject.gallery_id != gallery_id:
        raise NotFound(f"no subject {subject_id} in gallery {gallery_id}")
    return gallery, subject


def get_in_gallery(
    session: Session, principal: Principal, gallery_id: uuid.UUID, subject_id: uuid.UUID
) -> Subject:
    return gallery_and_subject(session, principal, gallery_id, subject_id)[1]


def get_by_external_id(
    session: Session, principal: Principal, gallery_id: uuid.UUID, external_id: str
) -> Subject:
    get_visible(session, principal, gallery_id)
    subject = session.scalar(
        select(Subject).where(Subject.gallery_id == gallery_id, Subject.external_id == external_id)
    )
    if subject is None:
        raise NotFound(f"no subject with external_id {external_id!r} in gallery {gallery_id}")
    return subject


def create(
    session: Session,
    *,
    principal: Principal,
    gallery_id: uuid.UUID,
    external_id: str,
    display_name: str | None,
    metadata: dict[str, Any],
) -> Subject:
    get_visible(session, principal, gallery_id)
    subject = Subject(
        gallery_id=gallery_id,
        external_id=external_id,
        display_name=display_name,
        metadata_=metadata,
    )
    try:
        with session.begin_nested():
            session.add(subject)
            session.flush()
    except IntegrityError as exc:
        raise Conflict(
            f"a subject with external_id {external_id!r} already exists in this gallery"
        ) from exc
    session.refresh(subject)
    record(
        session,
        actor=principal,
        action="subject.create",
        target_type="subject",
        target_id=str(subject.id),
        details={"gallery_id": str(gallery_id)},
    )
    return subject


def list_page(
    session: Session,
    principal: Principal,
    gallery_id: uuid.UUID,
    *,
    limit: int,
    cursor: str | None,
    external_id: str | None = None,
    prefix: str | None = None,
) -> tuple[list[Subject], str | None]:
    get_visible(session, principal, gallery_id)
    query = select(Subject).where(Subject.gallery_id == gallery_id)
    if external_id is not None:
        query = query.where(Subject.external_id == external_id)
    if prefix is not None:
        # autoescape: a % or _ typed into the search box matches itself.
        query = query.where(
            or_(
                Subject.external_id.istartswith(prefix, autoescape=True),
                Subject.display_name.istartswith(prefix, autoescape=True),
            )
        )
    query = paginate(
        query, created_col=Subject.created_at, id_col=Subject.id, limit=limit, cursor=cursor
    )
    return page(session.scalars(query).all(), limit)


def face_counts(session: Session, subject_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Faces per subject for a whole page in one query (0 for a subject without one)."""
    if not subject_ids:
        return {}
    rows = session.execute(
        select(Face.subject_id, func.count())
        .where(Face.subject_id.in_(subject_ids))
        .group_by(Face.subject_id)
    ).all()
    counts = {subject_id: 0 for subject_id in subject_ids}
    counts.update({subject_id: count for subject_id, count in rows})
    return counts


def face_count(session: Session, subject_id: uuid.UUID) -> int:
    return (
        session.scalar(select(func.count()).select_from(Face).where(Face.subject_id == subject_id))
        or 0
    )


def update(
    session: Session,
    *,
    principal: Principal,
    gallery_id: uuid.UUID,
    subject_id: uuid.UUID,
    display_name: str | None,
    metadata: dict[str, Any] | None,
    fields_set: set[str],
) -> Subject:
    subject = get_in_gallery(session, principal, gallery_id, subject_id)
    if "display_name" in fields_set:
        subject.display_name = display_name
    if "metadata" in fields_set and metadata is not None:
        subject.metadata_ = metadata
    subject.updated_at = datetime.now(UTC)
    session.flush()
    record(
        session,
        actor=principal,
        action="subject.update",
        target_type="subject",
        target_id=str(subject_id),
        details={"fields": sorted(fields_set)},
    )
    return subject


def delete(
    session: Session,
    components: Components,
    *,
    principal: Principal,
    gallery_id: uuid.UUID,
    subject_id: uuid.UUID,
) -> None:
    subject = get_in_gallery(session, principal, gallery_id, subject_id)
    erased = erase_subject(session, components, subject)
    record(
        session,
        actor=principal,
        action="subject.erase",
        target_type="subject",
        target_id=str(subject_id),
        details={"gallery_id": str(gallery_id), **erased.as_dict()},
    )
