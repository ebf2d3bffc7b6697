"""Parsing the non-image fields of image requests (multipart form fields or JSON keys)."""

from __future__ import annotations

import uuid
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.problems import Unprocessable

M = TypeVar("M", bound=BaseModel)


class VerifyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gallery: uuid.UUID | None = None
    subject: uuid.UUID | None = None
    external_id: str | None = Field(default=None, min_length=1, max_length=200)
    liveness: bool = False
    liveness_session: uuid.UUID | None = Field(
        default=None,
        description="A passed liveness session: its final frame is the probe (send no image).",
    )


class SearchParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    k: int = Field(default=5, ge=1, le=100)
    threshold: float | None = Field(default=None, ge=-1.0, le=1.0)


class DetectParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_faces: int | None = Field(default=None, ge=1, le=100)


def parse_fields(model: type[M], fields: dict[str, object]) -> M:
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        problem = Unprocessable("the request fields are malformed", errors=errors)
        problem.slug = "validation-error"
        raise problem from exc
