"""Who is calling, and what they may touch."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    admin = "admin"
    operator = "operator"
    client = "client"


# A role may do everything the roles after it may do.
ROLE_RANK = {Role.client: 0, Role.operator: 1, Role.admin: 2}


@dataclass(frozen=True)
class Principal:
    kind: str  # "api_key" | "user"
    id: str
    role: Role
    # None: every gallery. Otherwise the only galleries this principal can see.
    gallery_ids: frozenset[uuid.UUID] | None = None
    # Requests a minute for this caller; None: the service default; 0: no limit.
    rate_limit: int | None = None

    def can_act_as(self, role: Role) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]

    def sees_gallery(self, gallery_id: uuid.UUID) -> bool:
        return self.gallery_ids is None or gallery_id in self.gallery_ids
