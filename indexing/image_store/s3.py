"""Originals in S3 or an S3-compatible server (MinIO) through boto3.

The client is built by the caller (the factory, from explicit settings), so this
module needs no credentials of its own and tests can point it at a moto server."""

from __future__ import annotations

import logging
from typing import Any

from indexing.image_store.base import ImageNotFound, validate_key

_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_NO_BUCKET = {"NoSuchBucket", "404", "NotFound"}
log = logging.getLogger(__name__)


class S3ImageStore:
    def __init__(
        self, bucket: str, client: Any, *, key_prefix: str = "", create_bucket: bool = False
    ) -> None:
        # `client` is a boto3 S3 client; boto3 ships no type stubs, hence Any.
        self.bucket = bucket
        self.client = client
        self.key_prefix = key_prefix
        # A fresh MinIO has no bucket: the first enrollment would fail with NoSuchBucket.
        # When allowed, the store makes it (at start, and again at each health check
        # until it exists, so a server that came up late is caught up).
        self.create_bucket = create_bucket
        self._bucket_known = False
        if create_bucket:
            self.health()

    def _ensure_bucket(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except self.client.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code not in _NO_BUCKET or not self.create_bucket:
                raise
        region = self.client.meta.region_name
        config = {}
        if region and region != "us-east-1":  # us-east-1 refuses an explicit constraint
            config = {"CreateBucketConfiguration": {"LocationConstraint": region}}
        try:
            self.client.create_bucket(Bucket=self.bucket, **config)
        except self.client.exceptions.ClientError as exc:
            # Another process (the worker, a second API) made it first.
            if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou",):
                raise
        log.info("created the image bucket", extra={"bucket": self.bucket})

    def health(self) -> str | None:
        if self._bucket_known:
            return None
        try:
            self._ensure_bucket()
        except self.client.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in _NO_BUCKET:
                return f"bucket {self.bucket} does not exist (FACEPRINT_S3_CREATE_BUCKET is off)"
            return f"bucket {self.bucket}: {code or exc}"
        except Exception as exc:  # noqa: BLE001 - a server down, a bad endpoint: not ready
            return f"bucket {self.bucket} unreachable: {type(exc).__name__}: {exc}"
        # Known to exist from now on: the check need not cost a request per probe.
        self._bucket_known = True
        return None

    def _key(self, key: str, *, prefix: bool = False) -> str:
        return self.key_prefix + validate_key(key, prefix=prefix)

    def put(self, key: str, data: bytes) -> None:
        # A single PutObject is atomic on S3: readers see the old object or the new one.
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _NOT_FOUND:
                raise ImageNotFound(key) from exc
            raise
        body: bytes = response["Body"].read()
        return body

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _NOT_FOUND:
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def delete_prefix(self, prefix: str) -> int:
        full = self._key(prefix, prefix=True)
        paginator = self.client.get_paginator("list_objects_v2")
        count = 0
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
            objects = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            # DeleteObjects takes at most 1000 keys, which is also the page size.
            if objects:
                self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
                )
                count += len(objects)
        return count
