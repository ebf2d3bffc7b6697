"""Request and response bodies of ``/v1/webhooks``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DeliveryStatus = Literal["pending", "delivered", "failed"]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=1, max_length=2000)
    events: list[str] = Field(min_length=1, description="Event types to receive.")
    galleries: list[uuid.UUID] | None = Field(
        default=None, description="Only events of these galleries; omit (admin) for all."
    )
    description: str | None = Field(default=None, max_length=500)


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(default=None, min_length=1, max_length=2000)
    events: list[str] | None = Field(default=None, min_length=1)
    galleries: list[uuid.UUID] | None = None
    description: str | None = Field(default=None, max_length=500)
    active: bool | None = Field(default=None, description="true re-enables a disabled endpoint.")


class WebhookPublic(BaseModel):
    id: uuid.UUID
    url: str
    events: list[str]
    galleries: list[uuid.UUID] | None
    description: str | None
    active: bool
    disabled_reason: str | None
    previous_secret_valid_until: datetime | None
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookPublic):
    secret: str = Field(description="whsec_… signing secret. Shown once.")


class WebhookPage(BaseModel):
    items: list[WebhookPublic]
    next_cursor: str | None


class SecretRotated(BaseModel):
    id: uuid.UUID
    secret: str = Field(description="The new whsec_… secret. Shown once.")
    previous_secret_valid_until: datetime


class DeliveryPublic(BaseModel):
    id: uuid.UUID
    webhook_id: uuid.UUID
    event_id: int
    event_type: str
    message_id: str = Field(description="The webhook-id header: the same on every attempt.")
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    last_latency_ms: float | None
    last_response: str | None
    created_at: datetime
    delivered_at: datetime | None


class DeliveryPage(BaseModel):
    items: list[DeliveryPublic]
    next_cursor: str | None


class RecoverRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    since: datetime
    until: datetime | None = None


class RecoverAccepted(BaseModel):
    queued: int = Field(description="Failed deliveries queued again; sent in the background.")


class TestSent(BaseModel):
    event_id: int
    delivery_id: uuid.UUID
