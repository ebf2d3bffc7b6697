"""POST /v1/liveness (passive check) and the active challenge sessions:
POST /v1/liveness/sessions, POST /v1/liveness/sessions/{id}/frames,
GET /v1/liveness/sessions/{id}."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, Field

from service.domain.liveness import passive as passive_svc
from service.domain.liveness import sessions as svc
from service.http.deps import ClientPrincipal, ComponentsDep, LivenessDep, SessionDep
from service.http.openapi import problems
from service.http.uploads import image_request_body, read_upload

router = APIRouter(prefix="/v1/liveness", tags=["liveness"])


class PassiveOut(BaseModel):
    score: float = Field(description="1 = live, 0 = attack")
    decision: str = Field(description='"live" when score ≥ the documented threshold')
    threshold: float
    signals: dict[str, Any] = Field(description="Each signal's attack evidence and raw values")
    verification_id: uuid.UUID


class SessionOut(BaseModel):
    id: uuid.UUID
    actions: list[str] = Field(description="Perform these in this order")
    expires_at: datetime
    status: str = Field(description="pending | passed | failed")
    reasons: list[str]
    frames_received: int
    completed: list[dict[str, Any]]
    signals: dict[str, Any] | None = Field(
        default=None, description="Per-signal scores, once the session has finished"
    )
    verification_id: uuid.UUID | None = None


def _out(view: svc.SessionView) -> SessionOut:
    return SessionOut(**view.__dict__)


def _truthy(value: object) -> bool:
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


@router.post("", response_model=PassiveOut, openapi_extra=image_request_body("image"))
async def passive(
    request: Request,
    principal: ClientPrincipal,
    session: SessionDep,
    components: ComponentsDep,
    liveness: LivenessDep,
) -> PassiveOut:
    upload = await read_upload(request, max_images=1)
    image = upload.image("image")
    # The CPU pool verify uses: decoding and the models never run on the event loop.
    result, verification_id = await components.run_cpu(
        lambda: passive_svc.check_image(liveness, session, principal, image)
    )
    return PassiveOut(
        score=result.score,
        decision=result.decision,
        threshold=float(result.signals["threshold"]),
        signals=result.signals,
        verification_id=verification_id,
    )


@router.post("/sessions", status_code=status.HTTP_201_CREATED, response_model=SessionOut)
def create_session(
    principal: ClientPrincipal, session: SessionDep, liveness: LivenessDep
) -> SessionOut:
    return _out(svc.create_session(liveness, session, principal))


@router.get("/sessions/{session_id}", response_model=SessionOut)
def get_session(
    session_id: uuid.UUID, principal: ClientPrincipal, session: SessionDep, liveness: LivenessDep
) -> SessionOut:
    return _out(svc.get_session(liveness, session, principal, session_id))


@router.post(
    "/sessions/{session_id}/frames",
    response_model=SessionOut,
    responses=problems(409, 410),
    openapi_extra=image_request_body(
        "image",
        extra={"last": {"type": "boolean", "description": "This is the last frame: decide now"}},
    ),
)
async def post_frame(
    session_id: uuid.UUID,
    request: Request,
    principal: ClientPrincipal,
    session: SessionDep,
    components: ComponentsDep,
    liveness: LivenessDep,
) -> SessionOut:
    upload = await read_upload(request, max_images=1)
    image = upload.image("image")
    last = _truthy(upload.fields.get("last", False))
    view = await components.run_cpu(
        lambda: svc.post_frame(liveness, session, principal, session_id, image, last=last)
    )
    return _out(view)
