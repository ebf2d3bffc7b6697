"""The expensive, long-lived parts of the service, built once per process and injected:
the face pipeline, the vector index, the image store and the CPU thread pool."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import anyio
from prometheus_client import REGISTRY
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from indexing.image_store import ImageStore
from indexing.image_store.factory import build_image_store
from indexing.pipeline import FacePipeline, PipelineConfig, build_pipeline
from retrieval import outbox
from retrieval.base import IndexConfig, VectorIndex
from retrieval.factory import build_index
from retrieval.templates import ensure_model_index
from retrieval.warmup import warm_up
from service.core.datadir import Secrets
from service.core.settings import Settings

T = TypeVar("T")
log = logging.getLogger(__name__)


def index_config(settings: Settings) -> IndexConfig:
    return IndexConfig(
        backend=settings.vector_backend,
        m=settings.hnsw_m,
        ef_construction=settings.hnsw_ef_construction,
        ef_search=settings.hnsw_ef_search,
        qdrant_url=settings.qdrant_url,
        qdrant_api_key=(
            settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        ),
        qdrant_edge_path=settings.data_dir / "qdrant-edge",
        milvus_uri=settings.milvus_uri or str(settings.data_dir / "milvus.db"),
    )


def pipeline_config(settings: Settings) -> PipelineConfig:
    return PipelineConfig(
        detector=settings.detector,
        model_dir=settings.model_dir,
        cache_dir=settings.data_dir / "models",
        intra_op_threads=settings.intra_op_threads,
        idle_threads=max(settings.intra_op_threads, settings.idle_intra_op_threads),
        max_bytes=settings.max_upload_bytes,
        max_pixels=settings.max_image_pixels,
        min_face_px=settings.min_face_px,
        flip_average=settings.flip_average,
        calibration_dir=calibration_dir(settings),
        graph_runtime=settings.embed_runtime,
    )


def calibration_dir(settings: Settings) -> Path:
    """Where ``faceprint models calibrate`` writes the thresholds the service uses."""
    return settings.data_dir / "calibration"


def build_store(settings: Settings, secrets: Secrets) -> ImageStore:
    def secret(value: object) -> str | None:
        return value.get_secret_value() if value is not None else None  # type: ignore[attr-defined]

    return build_image_store(
        local_root=settings.data_dir / "images",
        encryption_key=secrets.encryption_key,
        s3_bucket=settings.s3_bucket,
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_region=settings.s3_region,
        s3_access_key_id=secret(settings.s3_access_key_id),
        s3_secret_access_key=secret(settings.s3_secret_access_key),
        s3_create_bucket=settings.s3_create_bucket,
    )


@dataclass
class Components:
    settings: Settings
    engine: Engine
    pipeline: FacePipeline
    index: VectorIndex
    image_store: ImageStore
    # Bounds the CPU-heavy work (decode, detect, embed) running at once off the event loop.
    cpu_limiter: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(4))
    _relay_stop: threading.Event = field(default_factory=threading.Event)
    _relay: threading.Thread | None = None

    def threshold(self, model_id: str) -> float:
        """The model's decision threshold: the registry's, the one source for verify,
        search and reports (a valid calibration record's, else the shipped default for
        this embedding mode; resolved once per process). The ``models`` table's column
        only records the value at registration, so no database lookup decides."""
        return self.pipeline.spec(model_id).threshold

    @property
    def default_model(self) -> str:
        return self.settings.default_model

    def ensure_model_index(self, session: Session, model_id: str, dim: int) -> None:
        ensure_model_index(session.connection(), self.index, model_id, dim)

    def drain_outbox(self) -> int:
        """Deliver pending writes to an external index now (a no-op for pgvector)."""
        return outbox.drain(self.engine.begin, self.index)

    async def run_cpu(self, fn: Callable[..., T], *args: object) -> T:
        """Run CPU-bound work in a worker thread so the event loop keeps serving."""
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.cpu_limiter)

    def start_warm_up(self) -> None:
        """Load each model's HNSW index into shared buffers in the background, so the
        first searches after a restart do not wait on disk (pgvector, pg_prewarm)."""
        threading.Thread(target=self._warm_up, name="index-warm-up", daemon=True).start()

    def _warm_up(self) -> None:
        try:
            blocks = warm_up(self.engine, self.index)
        except Exception:  # noqa: BLE001 - an optimisation; serving goes on without it
            log.exception("index warm-up failed")
            return
        if blocks:
            log.info("index warmed up", extra={"blocks": blocks})

    def start_relay(self) -> None:
        if self.index.external and self._relay is None:
            self._relay = threading.Thread(
                target=outbox.run_relay,
                args=(self.engine.begin, self.index, self._relay_stop),
                name="index-outbox-relay",
                daemon=True,
            )
            self._relay.start()

    def close(self) -> None:
        self._relay_stop.set()
        if self._relay is not None:
            self._relay.join(timeout=5)
        self.index.close()


def _pipeline_with_metrics(settings: Settings) -> FacePipeline:
    """Export the per-stage histogram on the process's /metrics. A second pipeline in the
    same process (only tests build several) keeps its histogram private instead of
    failing on the duplicate name."""
    try:
        return build_pipeline(pipeline_config(settings), metrics_registry=REGISTRY)
    except ValueError:
        return build_pipeline(pipeline_config(settings))


def build_components(
    settings: Settings, engine: Engine, secrets: Secrets, *, pipeline: FacePipeline | None = None
) -> Components:
    """``pipeline`` may be passed in to share one across apps (tests, benchmarks)."""
    return Components(
        settings=settings,
        engine=engine,
        pipeline=pipeline or _pipeline_with_metrics(settings),
        index=build_index(index_config(settings)),
        image_store=build_store(settings, secrets),
        cpu_limiter=anyio.CapacityLimiter(settings.cpu_workers),
    )


def face_image_key(gallery_id: uuid.UUID, subject_id: uuid.UUID, face_id: uuid.UUID) -> str:
    return f"galleries/{gallery_id}/subjects/{subject_id}/{face_id}"


def subject_image_prefix(gallery_id: uuid.UUID, subject_id: uuid.UUID) -> str:
    return f"galleries/{gallery_id}/subjects/{subject_id}/"


def gallery_image_prefix(gallery_id: uuid.UUID) -> str:
    return f"galleries/{gallery_id}/"


def probe_image_key(gallery_id: uuid.UUID | None, verification_id: uuid.UUID) -> str:
    owner = f"galleries/{gallery_id}" if gallery_id else "probes"
    return f"{owner}/probes/{verification_id}"


__all__: Sequence[str] = ["Components", "build_components"]
