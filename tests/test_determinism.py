"""The same photo gives the same detections, embedding (to 1e-6) and decision alone, under
concurrent load, in a batch, with more threads, and through the worker."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from indexing.pipeline import AnalyzedFace, FacePipeline, PipelineConfig, build_pipeline
from service.db.models import Template
from service.db.session import make_sessionmaker
from service.jobs.runner import JobRunner, RunnerConfig
from service.worker.loop import EnrollmentHandler
from tests.conftest import FACES_DIR

IDS = FACES_DIR / "identities"
MODEL = "dlib-resnet-v1-onnx"
PHOTO = IDS / "obama" / "obama2.jpg"
OTHERS = [
    IDS / "biden" / "biden1.jpg",
    IDS / "kit_harington" / "kit2.jpg",
    FACES_DIR / "multi" / "two_people.jpg",
]
TOLERANCE = 1e-6


def _same(a: AnalyzedFace, b: AnalyzedFace) -> None:
    assert a.bbox == b.bbox
    np.testing.assert_array_equal(a.landmarks, b.landmarks)
    assert a.quality.as_dict() == b.quality.as_dict()
    diff = float(np.max(np.abs(a.embeddings[MODEL] - b.embeddings[MODEL])))
    assert diff <= TOLERANCE, diff


def _under_load(pipe: FacePipeline, photo: bytes, others: list[bytes]) -> list[AnalyzedFace]:
    """The photo analysed 4 times among the others by 8 threads at once."""
    work = [photo, *others] * 4
    with ThreadPoolExecutor(8) as pool:
        done = list(pool.map(lambda d: pipe.analyze(d, model_ids=[MODEL]), work))
    return [faces[0] for data, faces in zip(work, done, strict=True) if data is photo]


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_the_pipeline_is_deterministic(tmp_path: Path, runtime: str) -> None:
    photo, others = PHOTO.read_bytes(), [p.read_bytes() for p in OTHERS]
    pipe = build_pipeline(PipelineConfig(cache_dir=tmp_path, graph_runtime=runtime))
    (alone,) = pipe.analyze(photo, model_ids=[MODEL])
    for got in _under_load(pipe, photo, others):
        _same(alone, got)
    batched = pipe.analyze_many([others[0], photo, others[2]], model_ids=[MODEL])[1]
    assert isinstance(batched, list)
    _same(alone, batched[0])
    # Another thread budget (as a lone call in a process with idle cores gets).
    wide = build_pipeline(
        PipelineConfig(
            cache_dir=tmp_path, graph_runtime=runtime, intra_op_threads=2, idle_threads=2
        )
    )
    _same(alone, wide.analyze(photo, model_ids=[MODEL])[0])


def test_enrolment_and_verify_decide_the_same_alone_under_load_and_through_the_worker(
    client: Any, admin_key: str
) -> None:
    headers = {"X-API-Key": admin_key}
    gallery = client.post(
        "/v1/galleries", json={"name": "det", "model_id": MODEL}, headers=headers
    ).json()["id"]
    subjects = [
        client.post(
            f"/v1/galleries/{gallery}/subjects", json={"external_id": name}, headers=headers
        ).json()["id"]
        for name in ("sync", "async")
    ]
    upload = {"image": ("o.jpg", PHOTO.read_bytes(), "image/jpeg")}
    url = f"/v1/galleries/{gallery}/subjects/{{}}/faces"
    sync = client.post(url.format(subjects[0]), files=upload, headers=headers)
    assert sync.status_code == 201, sync.text
    queued = client.post(
        url.format(subjects[1]), params={"async": "true"}, files=upload, headers=headers
    )
    assert queued.status_code == 202, queued.text
    components = client.app.state.container.components
    runner = JobRunner(
        sessions=make_sessionmaker(components.engine),
        handler=EnrollmentHandler(components),
        config=RunnerConfig(batch_size=4, max_wait_ms=0, poll_s=0.05),
    )
    assert runner.run_once(threading.Event()) == 1
    with client.app.state.container.sessionmaker() as session:
        rows = {
            str(r.subject_id): np.asarray(r.embedding, dtype=np.float32)
            for r in session.scalars(select(Template).where(Template.model_id == MODEL))
        }
    assert float(np.max(np.abs(rows[subjects[0]] - rows[subjects[1]]))) <= TOLERANCE

    probe = (IDS / "obama" / "obama3.jpg").read_bytes()

    def verify(subject: str) -> dict[str, Any]:
        r = client.post(
            "/v1/verify",
            files={"image": ("p.jpg", probe, "image/jpeg")},
            data={"gallery": gallery, "subject": subject},
            headers=headers,
        )
        assert r.status_code == 200, r.text
        return r.json()

    alone = verify(subjects[0])
    with ThreadPoolExecutor(6) as pool:
        loaded = list(pool.map(verify, subjects * 6))
    for got in loaded:
        assert got["match"] is alone["match"] is True
        assert abs(got["similarity"] - alone["similarity"]) <= TOLERANCE
        assert got["probe"]["bbox"] == alone["probe"]["bbox"]
