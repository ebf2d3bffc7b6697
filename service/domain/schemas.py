"""Pydantic request and response bodies of the v1 API (kept apart from the ORM models)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class GalleryCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    name: str = Field(min_length=1, max_length=200)
    model_id: str | None = Field(
        default=None, description="Embedding model for this gallery; the service default if unset."
    )
    store_probes: bool = Field(
        default=False, description="Keep probe images of verify/search calls (off by default)."
    )


class OpenSetEstimate(BaseModel):
    """What a search without a ``threshold`` risks at the gallery's current size."""

    subjects: int
    threshold: float
    fmr: float
    # Share of searches for someone not enrolled that still return a candidate (an
    # upper bound: comparisons taken as independent).
    expected_fpir: float


class GalleryUpdate(BaseModel):
    """Fields left out stay as they are. The model changes only through a reindex."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    store_probes: bool | None = None


class GalleryPublic(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    id: uuid.UUID
    name: str
    model_id: str
    pending_model_id: str | None
    store_probes: bool
    created_at: datetime
    subject_count: int | None = None
    face_count: int | None = None
    # Templates per embedding model (more than one while a reindex runs).
    template_counts: dict[str, int] | None = None
    # On GET /v1/galleries/{id}: the open-set risk at the gallery's size.
    open_set: OpenSetEstimate | None = None


class GalleryPage(BaseModel):
    items: list[GalleryPublic]
    next_cursor: str | None


class SubjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    external_id: str = Field(min_length=1, max_length=200)
    display_name: str | None = Field(default=None, max_length=200)
    metadata: dict[str, Any] = Field(default_factory=dict)


class SubjectUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    display_name: str | None = Field(default=None, max_length=200)
    metadata: dict[str, Any] | None = None


class SubjectPublic(BaseModel):
    id: uuid.UUID
    gallery_id: uuid.UUID
    external_id: str
    display_name: str | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    face_count: int | None = None


class SubjectPage(BaseModel):
    items: list[SubjectPublic]
    next_cursor: str | None


class BBoxOut(BaseModel):
    x: float
    y: float
    width: float
    height: float


class FacePublic(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    id: uuid.UUID
    subject_id: uuid.UUID
    gallery_id: uuid.UUID
    status: str
    bbox: BBoxOut | None
    landmarks: list[list[float]] | None
    quality: dict[str, Any] | None
    model_id: str | None
    model_ids: list[str]
    created_at: datetime
    # On the enrolment's own answer: boxes of the faces found but not enrolled.
    other_faces: list[BBoxOut] | None = None


class FacePage(BaseModel):
    items: list[FacePublic]
    next_cursor: str | None


class JobAccepted(BaseModel):
    job_id: uuid.UUID
    status: str
    face_id: uuid.UUID | None = None


class DetectedFaceOut(BaseModel):
    bbox: BBoxOut
    landmarks: list[list[float]]
    score: float
    quality: dict[str, Any]


class DetectResponse(BaseModel):
    faces: list[DetectedFaceOut]
    width: int | None = None
    height: int | None = None


class LivenessOut(BaseModel):
    decision: str
    score: float | None = Field(
        description="1 = live, 0 = attack; for a challenge session its depth-from-motion "
        "score, null when the session's actions gave no depth evidence"
    )
    signals: dict[str, Any]


class VerifyResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    verification_id: uuid.UUID
    match: bool
    similarity: float
    threshold: float
    model_id: str
    subject_id: uuid.UUID | None
    external_id: str | None
    probe: DetectedFaceOut | None
    reference: DetectedFaceOut | None = None
    liveness: LivenessOut | None = None
    latency_ms: float
    # Faces of the probe image that were found but not used (the probe is the largest,
    # or the one named by ``face``).
    other_faces: list[BBoxOut] = Field(default_factory=list)


class Candidate(BaseModel):
    subject_id: uuid.UUID
    external_id: str
    display_name: str | None
    similarity: float


class SearchFaceResult(BaseModel):
    verification_id: uuid.UUID
    probe: DetectedFaceOut
    candidates: list[Candidate]


class SearchResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    verification_id: uuid.UUID
    candidates: list[Candidate]
    threshold: float
    model_id: str
    probe: DetectedFaceOut
    latency_ms: float
    other_faces: list[BBoxOut] = Field(default_factory=list)
    # ``face=all``: one search per face of the probe, largest first (the first is also
    # the answer above); each is its own row of verification history.
    faces: list[SearchFaceResult] | None = None


class VerificationPublic(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    id: uuid.UUID
    created_at: datetime
    kind: str
    principal_type: str
    principal_id: str
    request_id: str | None
    gallery_id: uuid.UUID | None
    subject_id: uuid.UUID | None
    external_id: str | None
    model_id: str | None
    similarity: float | None
    threshold: float | None
    match: bool | None
    candidates: list[Any] | None
    probe_bbox: dict[str, Any] | None
    probe_quality: dict[str, Any] | None
    liveness_decision: str | None
    liveness_score: float | None
    liveness_signals: dict[str, Any] | None
    latency_ms: float | None
    label: str | None = None
    label_note: str | None = None
    labelled_by: str | None = None
    labelled_at: datetime | None = None


class VerificationLabel(BaseModel):
    """``PATCH /v1/verifications/{id}``: what a review found. ``genuine`` / ``impostor``
    say whether the probe was the claimed (or found) person; ``attack`` / ``bona_fide``
    whether the presentation was a spoof. ``label: null`` takes a label back."""

    model_config = ConfigDict(extra="forbid")
    label: Literal["genuine", "impostor", "attack", "bona_fide"] | None
    note: str | None = Field(None, max_length=2000)


class VerificationPage(BaseModel):
    items: list[VerificationPublic]
    next_cursor: str | None


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor_type: str
    actor_id: str
    action: str
    target_type: str
    target_id: str
    details: dict[str, Any]
    request_id: str | None


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_cursor: str | None
