"""A subject's data, all of it, in one document: the access right that goes with
erasure. The subject, each enrolled face (and, on request, its stored original), every
decision about the subject in the history, and the audit rows about it."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.core.principal import Principal
from service.db.models import AuditLog, Face, Verification
from service.domain.audit import record
from service.domain.components import Components
from service.domain.schemas import AuditEntry, VerificationPublic
from service.domain.subjects import face_count, get_in_gallery


class ExportedFace(BaseModel):
    id: uuid.UUID
    status: str
    bbox: dict[str, Any] | None
    landmarks: list[Any] | None
    quality: dict[str, Any] | None
    image_sha256: str
    created_at: datetime
    image_base64: str | None = None


class SubjectExport(BaseModel):
    exported_at: datetime
    subject: dict[str, Any]
    faces: list[ExportedFace]
    verifications: list[VerificationPublic]
    audit: list[AuditEntry]


def export(
    session: Session,
    components: Components,
    *,
    principal: Principal,
    gallery_id: uuid.UUID,
    subject_id: uuid.UUID,
    images: bool,
) -> SubjectExport:
    """Everything held about the subject. Templates are left out: they are derived from
    the images, and are only meaningful to the model that made them. The export itself
    is audited (who read a person's data is part of that person's data)."""
    subject = get_in_gallery(session, principal, gallery_id, subject_id)
    faces = session.scalars(
        select(Face).where(Face.subject_id == subject_id).order_by(Face.created_at)
    ).all()
    exported = []
    for face in faces:
        item = ExportedFace.model_validate(face, from_attributes=True)
        if images:
            item.image_base64 = base64.b64encode(
                components.image_store.get(face.image_key)
            ).decode()
        exported.append(item)
    calls = session.scalars(
        select(Verification)
        .where(Verification.subject_id == subject_id)
        .order_by(Verification.created_at.desc())
    ).all()
    audit_rows = session.scalars(
        select(AuditLog)
        .where(AuditLog.target_type == "subject", AuditLog.target_id == str(subject_id))
        .order_by(AuditLog.at.desc())
    ).all()
    document = SubjectExport(
        exported_at=datetime.now(UTC),
        subject={
            "id": subject.id,
            "gallery_id": subject.gallery_id,
            "external_id": subject.external_id,
            "display_name": subject.display_name,
            "metadata": subject.metadata_,
            "created_at": subject.created_at,
            "updated_at": subject.updated_at,
            "face_count": face_count(session, subject_id),
        },
        faces=exported,
        verifications=[VerificationPublic.model_validate(r, from_attributes=True) for r in calls],
        audit=[AuditEntry.model_validate(r, from_attributes=True) for r in audit_rows],
    )
    record(
        session,
        actor=principal,
        action="subject.export",
        target_type="subject",
        target_id=str(subject_id),
        details={"gallery_id": str(gallery_id), "images": images},
    )
    return document
