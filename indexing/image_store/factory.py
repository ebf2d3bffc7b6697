"""Build the configured image store from explicit parameters (no global settings)."""

from __future__ import annotations

from pathlib import Path

from indexing.image_store.base import ImageStore
from indexing.image_store.encrypted import EncryptedImageStore
from indexing.image_store.local import LocalImageStore
from indexing.image_store.s3 import S3ImageStore


def build_image_store(
    *,
    local_root: Path,
    encryption_key: bytes | None,
    old_encryption_keys: tuple[bytes, ...] = (),
    s3_bucket: str | None = None,
    s3_endpoint_url: str | None = None,
    s3_region: str | None = None,
    s3_access_key_id: str | None = None,
    s3_secret_access_key: str | None = None,
    s3_create_bucket: bool = False,
) -> ImageStore:
    """S3 when a bucket is given, the local directory otherwise; encrypted whenever a key
    is given (the service always passes one)."""
    store: ImageStore
    if s3_bucket:
        try:
            import boto3
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError(
                "FACEPRINT_S3_BUCKET is set but boto3 is missing: pip install 'faceprint[s3]'"
            ) from exc
        client = boto3.client(
            "s3",
            endpoint_url=s3_endpoint_url,
            region_name=s3_region,
            aws_access_key_id=s3_access_key_id,
            aws_secret_access_key=s3_secret_access_key,
        )
        store = S3ImageStore(s3_bucket, client, create_bucket=s3_create_bucket)
    else:
        store = LocalImageStore(local_root)
    if encryption_key is not None:
        store = EncryptedImageStore(store, encryption_key, old_keys=old_encryption_keys)
    return store
