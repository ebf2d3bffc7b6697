"""GET /v1/analytics and GET /v1/analytics/{report}: the ``faceprint analytics``
reports as JSON."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from service.core.problems import Unprocessable
from service.domain import analytics
from service.http.deps import OperatorPrincipal, ReadSessionDep

router = APIRouter(prefix="/v1/analytics", tags=["analytics"])


class ReportOut(BaseModel):
    report: str
    since: datetime | None
    until: datetime | None
    gallery: uuid.UUID | None
    model: str | None
    rows: list[dict[str, Any]]


@router.get("")
def list_reports(_principal: OperatorPrincipal) -> dict[str, list[str]]:
    return {"reports": list(analytics.REPORTS)}


@router.get("/{report}", response_model=ReportOut)
def get_report(
    report: str,
    principal: OperatorPrincipal,
    session: ReadSessionDep,
    since: datetime | None = None,
    until: datetime | None = None,
    gallery: uuid.UUID | None = None,
    model: str | None = None,
) -> ReportOut:
    """One report over ``[since, until)`` (admins: every gallery; operators: theirs)."""
    if since is not None and until is not None and since >= until:
        raise Unprocessable("since must be before until")
    filters = analytics.Filters(since=since, until=until, gallery_id=gallery, model_id=model)
    result = analytics.run_report(session, principal, report, filters)
    return ReportOut(
        report=result.name, since=since, until=until, gallery=gallery, model=model,
        rows=result.rows,
    )  # fmt: skip
