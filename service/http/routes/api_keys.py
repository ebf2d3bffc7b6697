"""POST/GET /v1/api-keys, DELETE /v1/api-keys/{id}."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field

from service.core.principal import Role
from service.domain.auth import key_admin
from service.http.deps import AdminPrincipal, SessionDep

router = APIRouter(prefix="/v1/api-keys", tags=["api-keys"])


class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: Role
    galleries: list[uuid.UUID] | None = Field(
        default=None, description="Restrict the key to these galleries; omit for all."
    )
    rate_limit_per_minute: int | None = Field(
        default=None,
        ge=0,
        description="Requests a minute for this key (0: none); omit for the service default, "
        "or the creating key's own limit when it has one.",
    )


class ApiKeyPublic(BaseModel):
    id: uuid.UUID
    name: str
    prefix: str
    role: Role
    galleries: list[uuid.UUID] | None
    rate_limit_per_minute: int | None = Field(description="None: the service default.")
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="The key itself. Shown once; only its hash is stored.")


class ApiKeyPage(BaseModel):
    items: list[ApiKeyPublic]
    next_cursor: str | None


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreated)
def create_key(body: ApiKeyCreate, principal: AdminPrincipal, session: SessionDep) -> ApiKeyCreated:
    new = key_admin.create(
        session,
        name=body.name,
        role=body.role,
        galleries=body.galleries,
        actor=principal,
        rate_limit=body.rate_limit_per_minute,
    )
    return ApiKeyCreated(**key_admin.public(new.row), key=new.plaintext)


@router.get("", response_model=ApiKeyPage)
def list_keys(
    principal: AdminPrincipal,
    session: SessionDep,
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = None,
) -> ApiKeyPage:
    rows, next_cursor = key_admin.list_page(session, limit=limit, cursor=cursor, actor=principal)
    return ApiKeyPage(
        items=[ApiKeyPublic(**key_admin.public(r)) for r in rows], next_cursor=next_cursor
    )


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_key(key_id: uuid.UUID, principal: AdminPrincipal, session: SessionDep) -> None:
    key_admin.revoke(session, key_id=key_id, actor=principal)
