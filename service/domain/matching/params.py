"""The non-image inputs of verify, search and detect (multipart form fields or JSON keys)."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field, field_validator

from indexing.face_choice import BadFaceSelector, FaceSelector

_FACE_HELP = (
    "Which face of the probe: `largest` (default) or a box `x,y,w,h` in pixels (the face "
    "overlapping it best); search also takes `all` (every face searched)."
)


def probe_selector(value: str) -> FaceSelector:
    """A probe's ``face``: the largest, or the one in a box (``all`` is search's own)."""
    wrong = f"face must be largest, all (search only) or a box x,y,w,h; got {value!r}"
    try:
        selector = FaceSelector.parse(value)
    except BadFaceSelector:
        raise BadFaceSelector(wrong) from None
    if selector.box is None and selector.mode != "largest":
        raise BadFaceSelector(wrong)
    return selector


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
    face: str = Field(default="largest", description=_FACE_HELP)

    @field_validator("face")
    @classmethod
    def _face(cls, value: str) -> str:
        probe_selector(value)
        return value


class SearchParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    k: int = Field(default=5, ge=1, le=100)
    threshold: float | None = Field(default=None, ge=-1.0, le=1.0)
    face: str = Field(default="largest", description=_FACE_HELP)

    @field_validator("face")
    @classmethod
    def _face(cls, value: str) -> str:
        if value.strip().lower() != "all":
            probe_selector(value)
        return value

    @property
    def every_face(self) -> bool:
        return self.face.strip().lower() == "all"


class DetectParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_faces: int | None = Field(default=None, ge=1, le=100)
