"""The non-image inputs of verify, search and detect (multipart form fields or JSON keys)."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field


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
