"""The image store: the same cases on the local directory, on S3 (a moto server) and
with encryption in front of each, plus the encryption's own guarantees."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from indexing.image_store import (
    EncryptedImageStore,
    ImageDecryptionError,
    ImageNotFound,
    ImageStore,
    InvalidImageKey,
    LocalImageStore,
    S3ImageStore,
    build_image_store,
)
from tests.conftest import FACES_DIR

PHOTO = FACES_DIR / "identities" / "obama" / "obama1.jpg"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _s3_client(endpoint: str):  # noqa: ANN202 - boto3 client
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def _bucket(endpoint: str) -> str:
    name = f"faces-{uuid.uuid4().hex[:12]}"
    _s3_client(endpoint).create_bucket(Bucket=name)
    return name


StoreFactory = Callable[[], ImageStore]


@pytest.fixture(params=["local", "s3", "local+aes", "s3+aes"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ImageStore:
    kind: str = request.param
    inner: ImageStore
    if kind.startswith("s3"):
        endpoint = request.getfixturevalue("moto_endpoint")
        inner = S3ImageStore(_bucket(endpoint), _s3_client(endpoint))
    else:
        inner = LocalImageStore(tmp_path / "images")
    if kind.endswith("+aes"):
        return EncryptedImageStore(inner, os.urandom(32))
    return inner


def test_round_trip_of_a_real_photo(store: ImageStore) -> None:
    data = PHOTO.read_bytes()
    key = f"{uuid.uuid4()}/{uuid.uuid4()}/face.jpg"
    assert not store.exists(key)
    store.put(key, data)
    assert store.exists(key)
    assert store.get(key) == data
    store.put(key, b"replaced")
    assert store.get(key) == b"replaced"
    store.delete(key)
    assert not store.exists(key)
    store.delete(key)  # deleting twice is fine


def test_missing_key_is_a_typed_error(store: ImageStore) -> None:
    with pytest.raises(ImageNotFound):
        store.get("g/none.jpg")


def test_delete_prefix_removes_only_that_prefix(store: ImageStore) -> None:
    for name in ("g1/s1/a.jpg", "g1/s1/b.jpg", "g1/s2/c.jpg", "g2/s1/d.jpg"):
        store.put(name, name.encode())
    assert store.delete_prefix("g1/s1/") == 2
    assert not store.exists("g1/s1/a.jpg")
    assert store.exists("g1/s2/c.jpg") and store.exists("g2/s1/d.jpg")
    assert store.delete_prefix("g1/") == 1
    assert store.delete_prefix("g1/") == 0
    assert store.get("g2/s1/d.jpg") == b"g2/s1/d.jpg"


@pytest.mark.parametrize(
    "key", ["../etc/passwd", "a/../../b", "/abs/path", "a//b", "", "a/.hidden", "a\\b", "a\x00b"]
)
def test_unsafe_keys_are_refused(store: ImageStore, key: str) -> None:
    with pytest.raises(InvalidImageKey):
        store.put(key, b"x")
    with pytest.raises(InvalidImageKey):
        store.get(key)


def test_local_store_cannot_escape_through_a_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    store = LocalImageStore(tmp_path / "images")
    (store.root / "link").symlink_to(outside)
    with pytest.raises(InvalidImageKey):
        store.put("link/x.jpg", b"x")
    assert not any(outside.iterdir())


def test_local_store_writes_atomically_without_leftovers(tmp_path: Path) -> None:
    store = LocalImageStore(tmp_path / "images")
    store.put("g/s/f.jpg", b"1" * 100_000)
    store.put("g/s/f.jpg", b"2" * 10)
    assert sorted(p.name for p in (store.root / "g" / "s").iterdir()) == ["f.jpg"]
    assert store.get("g/s/f.jpg") == b"2" * 10


def test_encrypted_objects_are_not_plaintext_and_tamper_is_detected(tmp_path: Path) -> None:
    inner = LocalImageStore(tmp_path / "images")
    store = EncryptedImageStore(inner, os.urandom(32))
    data = PHOTO.read_bytes()
    store.put("g/f.jpg", data)
    blob = inner.get("g/f.jpg")
    assert data not in blob and blob[:3] == b"FPE"
    # Same plaintext twice: a fresh nonce makes different ciphertexts.
    store.put("g/f2.jpg", data)
    assert inner.get("g/f2.jpg")[12:] != blob[12:]
    tampered = bytearray(blob)
    tampered[len(tampered) // 2] ^= 0x01
    inner.put("g/f.jpg", bytes(tampered))
    with pytest.raises(ImageDecryptionError, match="tampered"):
        store.get("g/f.jpg")
    # A valid ciphertext moved to another name does not decrypt either.
    inner.put("g/moved.jpg", inner.get("g/f2.jpg"))
    with pytest.raises(ImageDecryptionError):
        store.get("g/moved.jpg")
    inner.put("g/plain.jpg", data)
    with pytest.raises(ImageDecryptionError, match="not an encrypted"):
        store.get("g/plain.jpg")


def test_key_rotation_reads_old_objects_and_writes_with_the_new_key(tmp_path: Path) -> None:
    inner = LocalImageStore(tmp_path / "images")
    old_key, new_key = os.urandom(32), os.urandom(32)
    EncryptedImageStore(inner, old_key).put("g/old.jpg", b"old photo")
    rotated = EncryptedImageStore(inner, new_key, old_keys=[old_key])
    assert rotated.get("g/old.jpg") == b"old photo"
    assert rotated.needs_rotation("g/old.jpg")
    rotated.put("g/old.jpg", rotated.get("g/old.jpg"))
    assert not rotated.needs_rotation("g/old.jpg")
    with pytest.raises(ImageDecryptionError, match="unknown key id"):
        EncryptedImageStore(inner, old_key).get("g/old.jpg")
    with pytest.raises(ValueError):
        EncryptedImageStore(inner, b"short")


def test_factory_builds_local_or_s3_behind_encryption(tmp_path: Path, moto_endpoint: str) -> None:
    key = os.urandom(32)
    local = build_image_store(local_root=tmp_path / "images", encryption_key=key)
    assert isinstance(local, EncryptedImageStore) and isinstance(local.inner, LocalImageStore)
    local.put("a/b.jpg", b"data")
    assert local.get("a/b.jpg") == b"data"

    bucket = _bucket(moto_endpoint)
    s3 = build_image_store(
        local_root=tmp_path / "unused",
        encryption_key=key,
        s3_bucket=bucket,
        s3_endpoint_url=moto_endpoint,
        s3_region="us-east-1",
        s3_access_key_id="test",
        s3_secret_access_key="test",
    )
    assert isinstance(s3, EncryptedImageStore) and isinstance(s3.inner, S3ImageStore)
    s3.put("a/b.jpg", b"data")
    assert s3.get("a/b.jpg") == b"data"
    raw = _s3_client(moto_endpoint).get_object(Bucket=bucket, Key="a/b.jpg")["Body"].read()
    assert raw[:3] == b"FPE"
    plain = build_image_store(local_root=tmp_path / "plain", encryption_key=None)
    assert isinstance(plain, LocalImageStore)


def test_every_store_reports_itself_healthy(store: ImageStore) -> None:
    assert store.health() is None


def test_a_missing_local_directory_is_reported(tmp_path: Path) -> None:
    store = LocalImageStore(tmp_path / "images")
    (tmp_path / "images").rmdir()
    assert "missing" in (store.health() or "")


def test_s3_store_creates_its_bucket_only_when_allowed(moto_endpoint: str) -> None:
    client = _s3_client(moto_endpoint)
    name = f"fresh-{uuid.uuid4().hex[:12]}"
    refused = S3ImageStore(name, client)
    assert "does not exist" in (refused.health() or "")
    with pytest.raises(client.exceptions.NoSuchBucket):
        refused.put("a/b.jpg", b"data")

    allowed = S3ImageStore(name, client, create_bucket=True)  # makes it at once
    client.head_bucket(Bucket=name)
    allowed.put("a/b.jpg", b"data")
    assert refused.get("a/b.jpg") == b"data" and refused.health() is None
    # A second process finding the bucket there is fine.
    assert S3ImageStore(name, client, create_bucket=True).health() is None


def test_an_unreachable_s3_server_is_reported_not_raised() -> None:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3", endpoint_url="http://127.0.0.1:1", region_name="us-east-1",
        aws_access_key_id="x", aws_secret_access_key="x",
        config=Config(connect_timeout=1, retries={"max_attempts": 1}),
    )  # fmt: skip
    store = S3ImageStore("faces", client, create_bucket=True)
    assert "unreachable" in (store.health() or "")


def test_readyz_checks_the_image_store(make_client, moto_endpoint: str) -> None:  # noqa: ANN001
    from pydantic import SecretStr

    name = f"ready-{uuid.uuid4().hex[:12]}"
    s3 = {
        "s3_bucket": name, "s3_endpoint_url": moto_endpoint, "s3_region": "us-east-1",
        "s3_access_key_id": SecretStr("test"), "s3_secret_access_key": SecretStr("test"),
    }  # fmt: skip
    not_allowed = make_client(**s3, s3_create_bucket=False)
    ready = not_allowed.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["image_store"] == "failing"
    assert name in ready.json()["detail"]

    allowed = make_client(**s3)  # FACEPRINT_S3_CREATE_BUCKET is on by default
    ready = allowed.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["image_store"] == "ok"
    _s3_client(moto_endpoint).head_bucket(Bucket=name)
    # The service that was not ready becomes ready once the bucket is there.
    assert not_allowed.get("/readyz").status_code == 200
