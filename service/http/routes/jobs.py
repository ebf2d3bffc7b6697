"""GET /v1/jobs/{id}: the status of an asynchronous job (e.g. ``?async=true`` enrollment)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from service.domain import job_status as views
from service.http.deps import CurrentPrincipal, SessionDep

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


class JobPublic(BaseModel):
    id: uuid.UUID
    kind: str
    status: Literal["queued", "running", "done", "failed"]
    gallery_id: uuid.UUID | None
    attempts: int
    max_attempts: int
    result: dict[str, Any] | None = Field(description="What the job produced, once done.")
    error: str | None = Field(description="Why the last attempt failed, if it did.")
    created_at: datetime
    updated_at: datetime


@router.get("/{job_id}", response_model=JobPublic)
def get_job(job_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> JobPublic:
    job = views.get_visible(session, principal, job_id)
    return JobPublic(
        id=job.id,
        kind=job.kind,
        status=job.status,  # type: ignore[arg-type]
        gallery_id=job.gallery_id,
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        result=job.result,
        error=job.error,
        created_at=job.created_at,
        updated_at=job.updated_at,
    )
