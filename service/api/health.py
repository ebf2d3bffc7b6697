"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from service.metrics_export import exported_registry
from service.migrate import current_revision, head_revision
from service.problems import MEDIA_TYPE, TYPE_BASE

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    engine = request.app.state.engine
    checks: dict[str, str] = {}
    reasons: list[str] = []
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["database"] = "unreachable"
        reasons.append(f"database unreachable: {type(exc).__name__}")
    if checks["database"] == "ok":
        current, head = current_revision(engine), head_revision()
        if current == head:
            checks["migrations"] = "ok"
        else:
            checks["migrations"] = "pending"
            reasons.append(f"schema at {current}, code expects {head}: run `faceprint migrate`")
    for name, probe in getattr(request.app.state, "readiness_probes", {}).items():
        problem = probe()
        checks[name] = "ok" if problem is None else "failing"
        if problem is not None:
            reasons.append(f"{name}: {problem}")
    if reasons:
        body = {
            "type": TYPE_BASE + "not-ready",
            "title": "Not ready",
            "status": 503,
            "detail": "; ".join(reasons),
            "checks": checks,
        }
        return JSONResponse(body, status_code=503, media_type=MEDIA_TYPE)
    return JSONResponse({"status": "ready", "checks": checks})


@router.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(exported_registry()), media_type=CONTENT_TYPE_LATEST)
