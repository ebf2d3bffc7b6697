"""Galleries and their subjects: /v1/galleries…"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query, status

from service.db.models import Gallery, Subject
from service.domain import galleries, subject_export, subjects
from service.domain.schemas import (
    GalleryCreate,
    GalleryPage,
    GalleryPublic,
    GalleryUpdate,
    OpenSetEstimate,
    SubjectCreate,
    SubjectPage,
    SubjectPublic,
    SubjectUpdate,
)
from service.domain.subject_export import SubjectExport
from service.http.deps import ComponentsDep, OperatorPrincipal, SessionDep
from service.http.openapi import problems

router = APIRouter(prefix="/v1/galleries", tags=["galleries"])


def gallery_public(
    row: Gallery,
    subject_count: int | None = None,
    open_set: OpenSetEstimate | None = None,
    counts: tuple[int, int, dict[str, int]] | None = None,
) -> GalleryPublic:
    if counts is not None:
        subject_count = counts[0]
    return GalleryPublic(
        id=row.id,
        name=row.name,
        model_id=row.active_model_id,
        pending_model_id=row.pending_model_id,
        store_probes=row.store_probes,
        created_at=row.created_at,
        subject_count=subject_count,
        face_count=counts[1] if counts is not None else None,
        template_counts=counts[2] if counts is not None else None,
        open_set=open_set,
    )


def subject_public(row: Subject, face_count: int | None = None) -> SubjectPublic:
    return SubjectPublic(
        id=row.id,
        gallery_id=row.gallery_id,
        external_id=row.external_id,
        display_name=row.display_name,
        metadata=row.metadata_,
        created_at=row.created_at,
        updated_at=row.updated_at,
        face_count=face_count,
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=GalleryPublic)
def create_gallery(
    body: GalleryCreate,
    principal: OperatorPrincipal,
    session: SessionDep,
    components: ComponentsDep,
) -> GalleryPublic:
    row = galleries.create(
        session,
        components,
        principal=principal,
        name=body.name,
        model_id=body.model_id,
        store_probes=body.store_probes,
    )
    return gallery_public(row, 0)


@router.get("", response_model=GalleryPage)
def list_galleries(
    principal: OperatorPrincipal,
    session: SessionDep,
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = None,
) -> GalleryPage:
    rows, next_cursor = galleries.list_page(session, principal, limit=limit, cursor=cursor)
    counts = galleries.counts(session, [r.id for r in rows])
    return GalleryPage(
        items=[gallery_public(r, counts=counts[r.id]) for r in rows], next_cursor=next_cursor
    )


@router.get("/{gallery_id}", response_model=GalleryPublic)
def get_gallery(
    gallery_id: uuid.UUID,
    principal: OperatorPrincipal,
    session: SessionDep,
    components: ComponentsDep,
) -> GalleryPublic:
    row = galleries.get_visible(session, principal, gallery_id)
    counts = galleries.counts(session, [gallery_id])[gallery_id]
    estimate = galleries.open_set_estimate(components, row, counts[0])
    return gallery_public(row, open_set=estimate, counts=counts)


@router.patch("/{gallery_id}", response_model=GalleryPublic)
def update_gallery(
    gallery_id: uuid.UUID, body: GalleryUpdate, principal: OperatorPrincipal, session: SessionDep
) -> GalleryPublic:
    row = galleries.update(
        session,
        principal=principal,
        gallery_id=gallery_id,
        name=body.name,
        store_probes=body.store_probes,
    )
    return gallery_public(row, galleries.subject_count(session, gallery_id))


@router.delete("/{gallery_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_gallery(
    gallery_id: uuid.UUID,
    principal: OperatorPrincipal,
    session: SessionDep,
    components: ComponentsDep,
) -> None:
    galleries.delete(session, components, principal=principal, gallery_id=gallery_id)


@router.post(
    "/{gallery_id}/subjects",
    status_code=status.HTTP_201_CREATED,
    response_model=SubjectPublic,
    responses=problems(409),
)
def create_subject(
    gallery_id: uuid.UUID, body: SubjectCreate, principal: OperatorPrincipal, session: SessionDep
) -> SubjectPublic:
    row = subjects.create(
        session,
        principal=principal,
        gallery_id=gallery_id,
        external_id=body.external_id,
        display_name=body.display_name,
        metadata=body.metadata,
    )
    return subject_public(row, 0)


@router.get("/{gallery_id}/subjects", response_model=SubjectPage)
def list_subjects(
    gallery_id: uuid.UUID,
    principal: OperatorPrincipal,
    session: SessionDep,
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = None,
    external_id: str | None = Query(None, description="Only the subject with this id."),
    q: str | None = Query(
        None,
        min_length=1,
        max_length=200,
        description="Subjects whose external id or display name starts with this "
        "(case-insensitive).",
    ),
) -> SubjectPage:
    rows, next_cursor = subjects.list_page(
        session, principal, gallery_id, limit=limit, cursor=cursor, external_id=external_id,
        prefix=q,
    )  # fmt: skip
    counts = subjects.face_counts(session, [r.id for r in rows])
    return SubjectPage(
        items=[subject_public(r, counts[r.id]) for r in rows], next_cursor=next_cursor
    )


@router.get("/{gallery_id}/subjects/{subject_id}", response_model=SubjectPublic)
def get_subject(
    gallery_id: uuid.UUID, subject_id: uuid.UUID, principal: OperatorPrincipal, session: SessionDep
) -> SubjectPublic:
    row = subjects.get_in_gallery(session, principal, gallery_id, subject_id)
    return subject_public(row, subjects.face_count(session, subject_id))


@router.patch("/{gallery_id}/subjects/{subject_id}", response_model=SubjectPublic)
def update_subject(
    gallery_id: uuid.UUID,
    subject_id: uuid.UUID,
    body: SubjectUpdate,
    principal: OperatorPrincipal,
    session: SessionDep,
) -> SubjectPublic:
    row = subjects.update(
        session,
        principal=principal,
        gallery_id=gallery_id,
        subject_id=subject_id,
        display_name=body.display_name,
        metadata=body.metadata,
        fields_set=set(body.model_fields_set),
    )
    return subject_public(row, subjects.face_count(session, subject_id))


@router.get("/{gallery_id}/subjects/{subject_id}/export", response_model=SubjectExport)
def export_subject(
    gallery_id: uuid.UUID,
    subject_id: uuid.UUID,
    principal: OperatorPrincipal,
    session: SessionDep,
    components: ComponentsDep,
    images: bool = Query(False, description="Include each face's stored original (base64)."),
) -> SubjectExport:
    """Everything held about the subject (the access right that goes with erasure):
    the subject, its faces, every decision about it and the audit rows about it."""
    return subject_export.export(
        session, components, principal=principal, gallery_id=gallery_id,
        subject_id=subject_id, images=images,
    )  # fmt: skip


@router.delete("/{gallery_id}/subjects/{subject_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_subject(
    gallery_id: uuid.UUID,
    subject_id: uuid.UUID,
    principal: OperatorPrincipal,
    session: SessionDep,
    components: ComponentsDep,
) -> None:
    subjects.delete(
        session, components, principal=principal, gallery_id=gallery_id, subject_id=subject_id
    )
