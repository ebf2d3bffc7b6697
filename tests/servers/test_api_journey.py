"""The user journey over real HTTP against a production stack: ``faceprint serve`` on an
external PostgreSQL, the Milvus server, SeaweedFS S3 for the originals and Redis behind
Sentinel for the rate limits, configured only through FACEPRINT_* variables. Enroll the
shared identities, verify, search, erase one, reindex to another model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from retrieval.base import IndexConfig
from retrieval.factory import build_index
from tests.conftest import FACES_DIR
from tests.servers.api import ApiProcess, Stack, run_faceprint

pytestmark = pytest.mark.servers

IDENTITIES = FACES_DIR / "identities"
OLD, NEW = "dlib-resnet-v1-onnx", "dlib-resnet-v1"


def photos() -> dict[str, list[Path]]:
    return {p.name: sorted(p.iterdir()) for p in sorted(IDENTITIES.iterdir()) if p.is_dir()}


def upload(path: Path) -> dict:
    return {"image": (path.name, path.read_bytes(), "application/octet-stream")}


@pytest.fixture
def api(stack: Stack, tmp_path: Path) -> Iterator[tuple[ApiProcess, httpx.Client]]:
    run_faceprint("migrate", env=stack.env())  # already at head: says so, changes nothing
    process = ApiProcess(stack.env(), tmp_path / "serve.log")
    admin = run_faceprint("keys", "create", "--name", "admin", "--role", "admin",
                          env=stack.env()).strip()  # fmt: skip
    try:
        with httpx.Client(base_url=process.url, headers={"X-API-Key": admin},
                          timeout=120) as client:  # fmt: skip
            yield process, client
    finally:
        process.stop()


def _enroll(client: httpx.Client, gallery: str, subject: str, path: Path) -> dict:
    url = f"/v1/galleries/{gallery}/subjects/{subject}/faces"
    face = client.post(url, files=upload(path))
    if face.status_code == 422 and face.json()["type"].endswith("/low-quality"):
        # The shared set has low-resolution copies: the operator overrides the check.
        face = client.post(url, params={"check_quality": "false"}, files=upload(path))
    assert face.status_code == 201, (path, face.text)
    return face.json()


def _objects(stack: Stack) -> set[str]:
    pages = stack.s3.s3.client().get_paginator("list_objects_v2").paginate(Bucket=stack.bucket)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def _milvus_count(stack: Stack, model: str, gallery: str) -> int:
    import uuid

    index = build_index(IndexConfig(backend="milvus", milvus_uri=stack.milvus.uri))
    try:
        return index.count(None, model_id=model, gallery_id=uuid.UUID(gallery))
    finally:
        index.close()


def test_enroll_verify_search_erase_reindex_on_the_servers(
    stack: Stack, api: tuple[ApiProcess, httpx.Client]
) -> None:
    _, client = api
    gallery = client.post("/v1/galleries", json={"name": "staff"})
    assert gallery.status_code == 201, gallery.text
    gid = gallery.json()["id"]
    assert gallery.json()["model_id"] == OLD
    subjects: dict[str, str] = {}
    faces = 0
    for person, files in photos().items():
        made = client.post(f"/v1/galleries/{gid}/subjects", json={"external_id": person})
        assert made.status_code == 201, made.text
        subjects[person] = made.json()["id"]
        for path in files:
            _enroll(client, gid, subjects[person], path)
            faces += 1

    # Each original is in the bucket (encrypted), each template in Milvus.
    stored = _objects(stack)
    assert len(stored) == faces
    some = stack.s3.s3.client().get_object(Bucket=stack.bucket, Key=next(iter(stored)))
    assert not some["Body"].read().startswith((b"\xff\xd8", b"\x89PNG"))
    assert _milvus_count(stack, OLD, gid) == faces

    for person, files in photos().items():
        probe = files[-1]
        for other, subject_id in subjects.items():
            verdict = client.post(
                "/v1/verify", files=upload(probe), data={"gallery": gid, "subject": subject_id}
            )
            assert verdict.status_code == 200, verdict.text
            assert verdict.json()["match"] is (other == person), (probe.name, other)
        found = client.post(f"/v1/galleries/{gid}/search", files=upload(files[0]))
        assert found.status_code == 200, found.text
        assert found.json()["candidates"][0]["external_id"] == person

    # Erase one person: rows, originals in S3 and vectors in Milvus go.
    victim = "kit_harington"
    erased = client.delete(f"/v1/galleries/{gid}/subjects/{subjects[victim]}")
    assert erased.status_code == 204, erased.text
    # Over real HTTP the 204 comes after the commit: the next request reads it.
    gone = client.get(f"/v1/galleries/{gid}/subjects/{subjects[victim]}")
    assert gone.status_code == 404, gone.text
    left = faces - len(photos()[victim])
    assert len(_objects(stack)) == left
    assert _milvus_count(stack, OLD, gid) == left
    found = client.post(f"/v1/galleries/{gid}/search", files=upload(photos()[victim][0]))
    assert all(c["external_id"] != victim for c in found.json()["candidates"])

    # Reindex from the originals in S3 into a second Milvus collection, then switch.
    run_faceprint("reindex", "start", "--gallery", gid, "--to-model", NEW, "--nice", "0",
                  env=stack.env())  # fmt: skip
    assert _milvus_count(stack, NEW, gid) == left
    run_faceprint("reindex", "activate", "--gallery", gid, env=stack.env())
    assert client.get(f"/v1/galleries/{gid}").json()["model_id"] == NEW
    obama = photos()["obama"]
    verdict = client.post(
        "/v1/verify", files=upload(obama[0]), data={"gallery": gid, "external_id": "obama"}
    )
    assert verdict.status_code == 200 and verdict.json()["match"] is True, verdict.text
    found = client.post(f"/v1/galleries/{gid}/search", files=upload(photos()["biden"][0]))
    assert found.json()["candidates"][0]["external_id"] == "biden"


def test_rate_limits_are_counted_in_the_sentinel_master(
    stack: Stack, api: tuple[ApiProcess, httpx.Client]
) -> None:
    process, _ = api
    key = run_faceprint("keys", "create", "--name", "tight", "--role", "operator",
                        "--rate-limit", "3", env=stack.env()).strip()  # fmt: skip
    answers = [
        httpx.get(f"{process.url}/v1/galleries", headers={"X-API-Key": key}).status_code
        for _ in range(4)
    ]
    assert answers == [200, 200, 200, 429]
    master = redis.Redis(port=stack.redis.master_port())
    assert any(master.scan_iter("faceprint:rl:*"))
