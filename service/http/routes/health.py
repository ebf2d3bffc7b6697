"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.core.metrics import exported_registry
from service.domain import readiness
from service.domain.index_metrics import measure_outbox
from service.http.deps import ContainerDep
from service.http.openapi import problems

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses=problems(503))
def readyz(container: ContainerDep) -> dict[str, object]:
    """200 when the database, its schema, the index and the models are ready; else 503
    problem+json with every failing check."""
    return {
        "status": "ready",
        "checks": readiness.check(container.engine, container.readiness_probes),
    }


@router.get("/metrics")
def metrics(container: ContainerDep) -> Response:
    measure_outbox(container.engine)
    return Response(generate_latest(exported_registry()), media_type=CONTENT_TYPE_LATEST)
