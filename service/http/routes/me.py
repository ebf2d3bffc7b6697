"""GET /v1/me: the caller's own identity, role and gallery scope."""

from __future__ import annotations

from fastapi import APIRouter

from service.domain import whoami
from service.http.deps import ClientPrincipal, SessionDep

router = APIRouter(prefix="/v1/me", tags=["auth"])


@router.get("", response_model=whoami.Me)
def me(principal: ClientPrincipal, session: SessionDep) -> whoami.Me:
    return whoami.describe(session, principal)
