"""Reading jobs for the API, with the caller's gallery visibility applied."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from service.core.principal import Principal
from service.core.problems import NotFound
from service.db.models import Job


def get_visible(session: Session, principal: Principal, job_id: uuid.UUID) -> Job:
    """The job if the caller may see its gallery; a job of no gallery (a maintenance job)
    only to callers who see every gallery. Anything else is a 404, not a 403, so another
    tenant's job ids are not disclosed."""
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    visible = (
        principal.gallery_ids is None
        if job.gallery_id is None
        else principal.sees_gallery(job.gallery_id)
    )
    if not visible:
        raise NotFound(f"no job {job_id}")
    return job
