"""One settings object for the whole service, read from ``FACEPRINT_*`` variables.

Nothing set means the embedded default: a data directory holding an embedded
PostgreSQL, the image store and the generated secrets.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

import platformdirs
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from indexing.types import GraphRuntimeName
from service.core.redis_client import SENTINEL_SCHEME, parse_sentinel_url, sentinel_url

VectorBackendName = Literal["pgvector", "qdrant", "qdrant-edge", "milvus"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FACEPRINT_", extra="ignore")

    data_dir: Path = Field(
        default_factory=lambda: Path(platformdirs.user_data_dir("faceprint", appauthor=False)),
        description="Holds the embedded PostgreSQL, the image store and generated secrets.",
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="postgresql+psycopg://… of an external server; unset starts the embedded one.",
    )
    database_read_url: SecretStr | None = Field(
        default=None,
        description="postgresql+psycopg://… of a read replica (a streaming standby): the "
        "history list and the analytics reports read there. Verify, search and every write "
        "use FACEPRINT_DATABASE_URL (a replica lags; verify must read its own writes). "
        "Unset: everything on the primary.",
    )
    database_url_file: Path | None = Field(
        default=None,
        description="A file holding the database URL (e.g. a container secret); read when "
        "FACEPRINT_DATABASE_URL is unset. `serve --workers` hands its URL to its workers so.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis for rate limits shared across API processes: redis://host:port/db, "
        "or redis+sentinel://host:port[,host:port]/master_name[/db] to follow the master "
        "that Sentinel names.",
    )
    redis_sentinels: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Sentinels (host:port, comma-separated, or a JSON list) to ask for "
        "the master of FACEPRINT_REDIS_SENTINEL_MASTER; the password and db come from "
        "FACEPRINT_REDIS_URL when it is a redis:// URL. Same as a redis+sentinel:// URL.",
    )
    redis_sentinel_master: str = "mymaster"

    host: str = "127.0.0.1"
    port: int = 8000

    vector_backend: VectorBackendName = "pgvector"
    qdrant_url: str | None = None
    qdrant_api_key: SecretStr | None = None
    milvus_uri: str | None = None
    # Measured at 1M x 128 (benchmarks/search.py, model-matched): m=16/efc=64 tops out at
    # 0.955 top-1 agreement with the exact scan at ef 160; m=24/efc=128 reaches 0.996.
    hnsw_m: int = 24
    hnsw_ef_construction: int = 128
    hnsw_ef_search: int = 160

    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_create_bucket: bool = Field(
        default=True,
        description="Create FACEPRINT_S3_BUCKET when it does not exist (a fresh MinIO); "
        "off where the credentials may not create buckets.",
    )

    model_dir: Path | None = Field(
        default=None, description="Operator-provided model packs (InsightFace, anti-spoofing)."
    )
    default_model: str = Field(
        default="dlib-resnet-v1-onnx",
        description="Model of new galleries: dlib ResNet as an ONNX graph (parity with "
        "dlib-resnet-v1 tested; 20-50x faster than dlib-bin here).",
    )
    detector: str = "blazeface"
    embed_runtime: GraphRuntimeName = Field(
        default="auto",
        description="What runs the ONNX embedder: onnxruntime (float32; CUDA with the gpu "
        "extra), openvino (bfloat16 on CPUs with native bf16, e.g. Intel AMX: about 3x "
        "faster here, same parity), or auto: CUDA if present, else openvino where bf16 is "
        "native, else onnxruntime.",
    )
    intra_op_threads: int = 1
    idle_intra_op_threads: int = Field(
        default_factory=lambda: min(2, os.cpu_count() or 1),
        description="Threads the detector and the ONNX embedder may use for a request "
        "the API serves alone (with others in flight: intra_op_threads). Lowers the "
        "latency of a lightly loaded service; batch workers use intra_op_threads only.",
    )
    min_face_px: int = Field(default=56, description="Smallest face (pixels) enrollment accepts.")
    flip_average: bool = Field(
        default=False,
        description="Average each face's embedding with its mirror image's. Doubles the "
        "embedding cost; on lfw-dev FNMR at FMR 1e-3 2.1% instead of 2.9%. The model's threshold "
        "follows this setting (each variant is calibrated).",
    )
    cpu_workers: int = Field(
        default=4, description="Requests doing CPU work (decode, detect, embed) at once."
    )

    jwt_secret: SecretStr | None = Field(
        default=None, description="HS256 signing key; generated into the data dir when unset."
    )
    jwt_previous_secrets: list[SecretStr] = Field(
        default_factory=list,
        description="Retired signing keys (JSON list) still accepted until their tokens expire.",
    )
    encryption_key: SecretStr | None = Field(
        default=None,
        description="base64 AES-256 key for stored images; generated into the data dir when unset.",
    )
    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 14 * 24 * 3600

    max_upload_bytes: int = 10 * 1024 * 1024
    max_body_bytes: int = Field(
        default=1024 * 1024,
        description="Cap on a request body that is not an image upload (JSON, forms).",
    )
    max_image_pixels: int = 40_000_000

    liveness_session_validity_s: float = Field(
        default=60.0,
        description="How long after it passed a liveness session can back a verify (once).",
    )

    # Above the 1,000+ verifications a minute one integrating backend sends, usually
    # through one key; per-key limits (`keys create --rate-limit`) override it.
    rate_limit_per_minute: int = 3000
    rate_limit_auth_per_minute: int = 30  # per client IP on /v1/auth/*: bounds password guessing
    log_level: str = "INFO"
    cors_origins: list[str] = Field(
        default_factory=list,
        description='Origins (JSON list, e.g. ["https://app.example"]) whose pages may '
        "call the API from a browser; empty: CORS off.",
    )

    webhook_allow_http: bool = Field(
        default=False, description="Accept http:// webhook URLs (local set-ups, tests)."
    )
    webhook_allow_private: bool = Field(
        default=False,
        description="Deliver to loopback, private, link-local and metadata addresses.",
    )
    webhook_retry_schedule_s: list[float] = Field(
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0],
        description="Delay before each retry of a failed delivery (JSON list, ±10% jitter); "
        "after the last one the delivery is failed.",
    )
    webhook_timeout_s: float = 10.0
    webhook_dispatchers: int = Field(
        default=4, description="Deliveries in flight at once, per process (0: none here)."
    )
    webhook_retention_days: int = Field(
        default=30,
        description="Events whose every delivery succeeded are deleted after this many days "
        "(failed ones are kept for recover).",
    )
    history_retention_days: int | None = Field(
        default=None,
        ge=1,
        description="The default of `faceprint history prune`: history older than this "
        "many days is deleted, its daily aggregates kept.",
    )
    webhook_poll_s: float = Field(
        default=1.0, description="How often an idle dispatcher looks for due retries."
    )

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("jwt_secret")
    @classmethod
    def _strong_jwt_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("FACEPRINT_JWT_SECRET must be at least 32 characters")
        return value

    @model_validator(mode="after")
    def _url_from_file(self) -> Settings:
        if self.database_url is None and self.database_url_file is not None:
            url = self.database_url_file.read_text().strip()
            if not url:
                raise ValueError(f"FACEPRINT_DATABASE_URL_FILE {self.database_url_file} is empty")
            self.database_url = SecretStr(url)
        return self

    @field_validator("redis_sentinels", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        # "h1:p1,h2:p2" is what operators write; a JSON list works too (NoDecode leaves
        # the variable's text to this validator).
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @model_validator(mode="after")
    def _redis_target(self) -> Settings:
        """Fold FACEPRINT_REDIS_SENTINELS into redis_url, so that one value says where
        the shared limits live (and whether there are any)."""
        if self.redis_sentinels:
            if self.redis_url and self.redis_url.startswith(SENTINEL_SCHEME):
                raise ValueError(
                    "set FACEPRINT_REDIS_SENTINELS or a redis+sentinel:// FACEPRINT_REDIS_URL,"
                    " not both"
                )
            self.redis_url = sentinel_url(
                self.redis_sentinels, self.redis_sentinel_master, self.redis_url
            )
        if self.redis_url and self.redis_url.startswith(SENTINEL_SCHEME):
            parse_sentinel_url(self.redis_url)  # a malformed one fails at start-up
        return self

    @model_validator(mode="after")
    def _backend_urls(self) -> Settings:
        if self.vector_backend == "qdrant" and not self.qdrant_url:
            raise ValueError("FACEPRINT_VECTOR_BACKEND=qdrant needs FACEPRINT_QDRANT_URL")
        return self

    @property
    def embedded(self) -> bool:
        """True when the service runs its own PostgreSQL inside the data directory."""
        return self.database_url is None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
