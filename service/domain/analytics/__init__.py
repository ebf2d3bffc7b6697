"""Analytics on the verification history: reports computed in SQL over the
``analytics`` views, the daily aggregate's refresh, and retention.

The HTTP routes (``GET /v1/analytics/{report}``) and ``faceprint analytics REPORT`` both
call :func:`run_report`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from service.core.principal import Principal, Role
from service.core.problems import Forbidden, NotFound
from service.domain.analytics import reports
from service.domain.analytics.scope import Filters, Scope, scope_for

ReportFn = Callable[[Session, Scope], reports.Rows]

REPORTS: dict[str, ReportFn] = {
    "volume": reports.volume,
    "outcomes": reports.outcomes,
    "latency": reports.latency,
    "scores": reports.scores,
    "errors": reports.errors,
    "liveness": reports.liveness,
    "duplicates": reports.duplicates,
    "drift": reports.drift,
}


@dataclass(frozen=True)
class Report:
    name: str
    filters: Filters
    rows: list[dict[str, Any]]


def run_report(session: Session, principal: Principal, name: str, filters: Filters) -> Report:
    """One report for an admin, or for an operator over the galleries it may see."""
    if not principal.can_act_as(Role.operator):
        raise Forbidden("analytics reports need the operator or admin role")
    report = REPORTS.get(name)
    if report is None:
        raise NotFound(f"no report {name!r}; the reports are {', '.join(REPORTS)}")
    rows = report(session, scope_for(principal, filters))
    return Report(name, filters, rows)


__all__ = ["REPORTS", "Filters", "Report", "Scope", "run_report", "scope_for"]
