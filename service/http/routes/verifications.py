"""GET /v1/verifications, GET and PATCH /v1/verifications/{id}."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Query

from service.domain import history
from service.domain.schemas import VerificationLabel, VerificationPage, VerificationPublic
from service.http.deps import ClientPrincipal, OperatorPrincipal, ReadSessionDep, SessionDep

router = APIRouter(prefix="/v1/verifications", tags=["history"])


@router.get("", response_model=VerificationPage)
def list_verifications(
    principal: ClientPrincipal,
    session: ReadSessionDep,
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = None,
    gallery: uuid.UUID | None = None,
    subject: uuid.UUID | None = None,
    kind: Literal["verify", "search", "liveness"] | None = None,
    match: bool | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> VerificationPage:
    """Newest first. Clients see their own calls; operators and admins see every call
    in the galleries they can see. Read from FACEPRINT_DATABASE_READ_URL when set (it
    may lag the newest calls by the replica's delay); GET by id reads the primary."""
    rows, next_cursor = history.list_page(
        session, principal, limit=limit, cursor=cursor, gallery_id=gallery, subject_id=subject,
        kind=kind, match=match, since=since, until=until,
    )  # fmt: skip
    return VerificationPage(
        items=[VerificationPublic.model_validate(r, from_attributes=True) for r in rows],
        next_cursor=next_cursor,
    )


@router.get("/{verification_id}", response_model=VerificationPublic)
def get_verification(
    verification_id: uuid.UUID, principal: ClientPrincipal, session: SessionDep
) -> VerificationPublic:
    row = history.get(session, principal, verification_id)
    return VerificationPublic.model_validate(row, from_attributes=True)


@router.patch("/{verification_id}", response_model=VerificationPublic)
def label_verification(
    verification_id: uuid.UUID,
    body: VerificationLabel,
    principal: OperatorPrincipal,
    session: SessionDep,
) -> VerificationPublic:
    """Set the ground truth of one decision (operators, in their galleries): the
    analytics reports compute FMR, FNMR, APCER and BPCER from these labels."""
    row = history.set_label(session, principal, verification_id, label=body.label, note=body.note)
    return VerificationPublic.model_validate(row, from_attributes=True)
