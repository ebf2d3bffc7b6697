"""The relational schema, in one place. Alembic revisions under ``migrations/`` create it;
``tests/test_migrations.py`` checks that the two agree."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    literal_column,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# The ground-truth labels a reviewer may put on a history row.
GROUND_TRUTH = ("genuine", "impostor", "attack", "bona_fide")
GROUND_TRUTH_SQL = "(" + ", ".join(f"'{label}'" for label in GROUND_TRUTH) + ")"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)


def _created() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class User(Base):
    __tablename__ = "users"
    id: Mapped[uuid.UUID] = _uuid_pk()
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16))
    disabled: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_at: Mapped[datetime] = _created()


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    # NULL: every gallery; otherwise the galleries this key may touch.
    gallery_ids: Mapped[list[uuid.UUID] | None] = mapped_column(ARRAY(UUID(as_uuid=True)))
    # Requests a minute; NULL: FACEPRINT_RATE_LIMIT_PER_MINUTE; 0: no limit.
    rate_limit_per_minute: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = _created()
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"
    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    family_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = _created()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Model(Base):
    """A registered embedding model: what its vectors mean and where to cut a decision."""

    __tablename__ = "models"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    dim: Mapped[int] = mapped_column(Integer)
    metric: Mapped[str] = mapped_column(String(16), server_default="cosine")
    # The registry's threshold when the model was registered here, kept as a record.
    # Decisions read the registry (``Components.threshold``): a calibration made later,
    # or mirror averaging switched on, changes the threshold without touching this row;
    # each verification stores the threshold it actually used.
    threshold: Mapped[float] = mapped_column(Float)
    version: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = _created()


class Gallery(Base):
    __tablename__ = "galleries"
    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(200))
    active_model_id: Mapped[str] = mapped_column(ForeignKey("models.id"))
    # Set while a reindex runs: new enrollments are embedded for both models.
    pending_model_id: Mapped[str | None] = mapped_column(ForeignKey("models.id"))
    previous_model_id: Mapped[str | None] = mapped_column(ForeignKey("models.id"))
    store_probes: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = _created()


class Subject(Base):
    __tablename__ = "subjects"
    __table_args__ = (UniqueConstraint("gallery_id", "external_id"),)
    id: Mapped[uuid.UUID] = _uuid_pk()
    gallery_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("galleries.id", ondelete="CASCADE"), index=True
    )
    external_id: Mapped[str] = mapped_column(String(200))
    display_name: Mapped[str | None] = mapped_column(String(200))
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONB, server_default=text("'{}'::jsonb")
    )
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


class Face(Base):
    """One enrolled photo of a subject: where the face was, how good it was, and the
    stored original that a reindex re-embeds from."""

    __tablename__ = "faces"
    id: Mapped[uuid.UUID] = _uuid_pk()
    subject_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("subjects.id", ondelete="CASCADE"), index=True
    )
    gallery_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("galleries.id", ondelete="CASCADE"), index=True
    )
    image_key: Mapped[str] = mapped_column(String(300))
    image_sha256: Mapped[str] = mapped_column(String(64))
    bbox: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    landmarks: Mapped[list[Any] | None] = mapped_column(JSONB)
    quality: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    quality_score: Mapped[float | None] = mapped_column(Float)
    # pending: stored, waiting for the worker; ready: embedded and indexed; failed.
    status: Mapped[str] = mapped_column(String(16), server_default="ready")
    created_at: Mapped[datetime] = _created()


class Template(Base):
    """A face's embedding under one model. Postgres is the system of record; the vector
    index (pgvector in this table, or Qdrant/Milvus) is a projection of these rows."""

    __tablename__ = "templates"
    __table_args__ = (
        UniqueConstraint("face_id", "model_id"),
        Index("ix_templates_subject_model", "subject_id", "model_id"),
        Index("ix_templates_gallery_model", "gallery_id", "model_id"),
    )
    id: Mapped[uuid.UUID] = _uuid_pk()
    face_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"))
    subject_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("subjects.id", ondelete="CASCADE"))
    gallery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("galleries.id", ondelete="CASCADE"))
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id"))
    # Untyped vector: each model's dimension is fixed by an expression HNSW index per model.
    embedding: Mapped[Any] = mapped_column(Vector())
    created_at: Mapped[datetime] = _created()


class IndexOutbox(Base):
    """Writes bound for an external vector index (Qdrant, Milvus), committed with the
    template row and drained by the relay, so a crash loses and duplicates nothing."""

    __tablename__ = "index_outbox"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    op: Mapped[str] = mapped_column(String(16))
    template_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    gallery_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    subject_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    model_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = _created()
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)


class Verification(Base):
    """Verification history: every verify and search decision, for audit and SQL analytics
    (the ``analytics`` views of migration 0006 read it)."""

    __tablename__ = "verifications"
    __table_args__ = (
        Index("ix_verifications_gallery_created", "gallery_id", "created_at"),
        # Appended in time order: BRIN narrows a time range at a tiny insert cost.
        Index("ix_verifications_created_brin", "created_at", postgresql_using="brin"),
        Index(
            "ix_verifications_labelled",
            "model_id",
            "created_at",
            postgresql_where=text("label IS NOT NULL"),
        ),
        CheckConstraint(f"label IN {GROUND_TRUTH_SQL}", name="label"),
    )
    id: Mapped[uuid.UUID] = _uuid_pk()
    created_at: Mapped[datetime] = _created()
    kind: Mapped[str] = mapped_column(String(16))  # verify | search | liveness
    principal_type: Mapped[str] = mapped_column(String(16))  # api_key | user
    principal_id: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    gallery_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    subject_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    external_id: Mapped[str | None] = mapped_column(String(200))
    model_id: Mapped[str | None] = mapped_column(String(64))
    similarity: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    match: Mapped[bool | None] = mapped_column(Boolean)
    candidates: Mapped[list[Any] | None] = mapped_column(JSONB)
    probe_bbox: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    probe_quality: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    probe_image_key: Mapped[str | None] = mapped_column(String(300))
    liveness_decision: Mapped[str | None] = mapped_column(String(16))
    liveness_score: Mapped[float | None] = mapped_column(Float)
    liveness_signals: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    # Ground truth from a review: genuine / impostor (was the match right?), attack /
    # bona_fide (was the liveness decision right?); who said so, and when.
    label: Mapped[str | None] = mapped_column(String(16))
    label_note: Mapped[str | None] = mapped_column(Text)
    labelled_by: Mapped[str | None] = mapped_column(String(100))
    labelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class VerificationDay(Base):
    """The daily aggregates of history days that retention pruned (``analytics.daily``
    reads them with the live days), so totals outlive the rows."""

    __tablename__ = "verification_days"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    day: Mapped[date] = mapped_column(Date, index=True)
    gallery_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    kind: Mapped[str] = mapped_column(String(16))
    model_id: Mapped[str | None] = mapped_column(String(64))
    principal_type: Mapped[str] = mapped_column(String(16))
    principal_id: Mapped[str] = mapped_column(String(64))
    decisions: Mapped[int] = mapped_column(BigInteger)
    matches: Mapped[int] = mapped_column(BigInteger)
    liveness_live: Mapped[int] = mapped_column(BigInteger)
    liveness_checked: Mapped[int] = mapped_column(BigInteger)
    labelled: Mapped[int] = mapped_column(BigInteger)
    mean_similarity: Mapped[float | None] = mapped_column(Float)
    mean_latency_ms: Mapped[float | None] = mapped_column(Float)
    p50_latency_ms: Mapped[float | None] = mapped_column(Float)
    p95_latency_ms: Mapped[float | None] = mapped_column(Float)


class Webhook(Base):
    __tablename__ = "webhooks"
    id: Mapped[uuid.UUID] = _uuid_pk()
    url: Mapped[str] = mapped_column(Text)
    # Encrypted with the data key: it must be recoverable to sign deliveries.
    secret_encrypted: Mapped[bytes] = mapped_column()
    # After a rotation the old secret signs too, until it expires.
    previous_secret_encrypted: Mapped[bytes | None] = mapped_column()
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    events: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    # None: events of every gallery (and those of no gallery). Otherwise only these.
    gallery_ids: Mapped[list[uuid.UUID] | None] = mapped_column(ARRAY(UUID(as_uuid=True)))
    description: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


class Event(Base):
    """Transactional outbox of domain events (enrollment.completed, verification.*)."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_type: Mapped[str] = mapped_column(String(64))
    # The whole message ({"type", "id", "timestamp", "data"}): every retry sends it as is.
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    gallery_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = _created()
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_status_next", "status", "next_attempt_at"),)
    id: Mapped[uuid.UUID] = _uuid_pk()
    webhook_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhooks.id", ondelete="CASCADE"), index=True
    )
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = _created()
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_latency_ms: Mapped[float | None] = mapped_column(Float)
    last_response: Mapped[str | None] = mapped_column(Text)  # its first 1 KB
    created_at: Mapped[datetime] = _created()
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Job(Base):
    """Durable job queue (SELECT … FOR UPDATE SKIP LOCKED; LISTEN/NOTIFY wakes workers)."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_run_after", "status", "run_after"),)
    id: Mapped[uuid.UUID] = _uuid_pk()
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), server_default="queued")
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    max_attempts: Mapped[int] = mapped_column(Integer, server_default="5")
    run_after: Mapped[datetime] = _created()
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    worker_id: Mapped[str | None] = mapped_column(String(128))
    gallery_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


class LivenessSession(Base):
    __tablename__ = "liveness_sessions"
    # A frame's digest is looked up in every other session (replay across sessions):
    # without this index that is a scan of all sessions' state, per frame.
    __table_args__ = (
        Index(
            "ix_liveness_sessions_digests",
            literal_column("(state -> 'digests')").label("digests"),
            postgresql_using="gin",
            postgresql_ops={"digests": "jsonb_path_ops"},
        ),
    )
    id: Mapped[uuid.UUID] = _uuid_pk()
    principal_id: Mapped[str] = mapped_column(String(64))
    actions: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    reasons: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    state: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    frames_received: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime] = _created()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditLog(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = _created()
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    request_id: Mapped[str | None] = mapped_column(String(64))
