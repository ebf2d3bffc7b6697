"""Who the caller is, as the caller may know it: the console's first request after
signing in, so it shows only the pages and galleries this principal can use."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.core.principal import Principal
from service.db.models import ApiKey, Gallery, User


class GalleryRef(BaseModel):
    id: uuid.UUID
    name: str


class Me(BaseModel):
    kind: str = Field(description="api_key | user")
    id: str
    name: str | None = Field(description="The key's name or the user's email")
    role: str
    galleries: list[GalleryRef] | None = Field(
        description="The galleries this caller is limited to; null: every gallery"
    )


def describe(session: Session, principal: Principal) -> Me:
    name: str | None = None
    if principal.kind == "api_key":
        key = session.get(ApiKey, uuid.UUID(principal.id))
        name = key.name if key else None
    elif principal.kind == "user":
        user = session.get(User, uuid.UUID(principal.id))
        name = user.email if user else None
    galleries = None
    if principal.gallery_ids is not None:
        # Names of the galleries in the caller's own scope only: a client key (which
        # cannot list galleries) learns what it may search, nothing else.
        rows = session.execute(
            select(Gallery.id, Gallery.name)
            .where(Gallery.id.in_(list(principal.gallery_ids)))
            .order_by(Gallery.name)
        ).all()
        galleries = [GalleryRef(id=i, name=n) for i, n in rows]
    return Me(
        kind=principal.kind, id=principal.id, name=name, role=principal.role.value,
        galleries=galleries,
    )  # fmt: skip
