"""Reindex on the real app and models: dlib-resnet-v1 → dlib-resnet-v1-onnx while a
thread keeps verifying (zero failed requests), resumable after an interruption, new
enrollments written for both models, coverage and shadow report, then activate,
rollback and drop-old."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from service.core.problems import Conflict, Unprocessable
from service.domain import reindex
from service.domain.reindex.jobs import exclusive
from service.domain.reindex.reembed import PipelineReembedder
from tests.conftest import FACES_DIR

IDS = FACES_DIR / "identities"
OLD, NEW = "dlib-resnet-v1", "dlib-resnet-v1-onnx"
# Full-resolution photos only: the low-resolution copies fail the quality check.
PHOTOS = {
    "obama": ["obama1.jpg", "obama2.jpg"],
    "biden": ["biden1.jpg", "biden2.jpg"],
    "kit_harington": ["kit1.jpg", "kit2.jpg"],
    "rose_leslie": ["rose1.jpg", "rose2.jpg"],
}


def _upload(path: Path) -> dict[str, Any]:
    return {"image": (path.name, path.read_bytes(), "application/octet-stream")}


@pytest.fixture
def gallery(client: Any, admin_key: str) -> dict[str, Any]:
    headers = {"X-API-Key": admin_key}
    made = client.post("/v1/galleries", json={"name": "upgrade", "model_id": OLD}, headers=headers)
    assert made.status_code == 201, made.text
    gallery_id = made.json()["id"]
    subjects = {}
    for person, files in PHOTOS.items():
        subject = client.post(
            f"/v1/galleries/{gallery_id}/subjects", json={"external_id": person}, headers=headers
        ).json()
        subjects[person] = subject["id"]
        for name in files:
            face = client.post(
                f"/v1/galleries/{gallery_id}/subjects/{subject['id']}/faces",
                files=_upload(IDS / person / name),
                headers=headers,
            )
            assert face.status_code == 201, face.text
    return {"id": uuid.UUID(gallery_id), "subjects": subjects, "headers": headers}


def _verify(client: Any, g: dict[str, Any], probe: Path, person: str) -> dict[str, Any]:
    response = client.post(
        "/v1/verify",
        files=_upload(probe),
        data={"gallery": str(g["id"]), "subject": g["subjects"][person]},
        headers=g["headers"],
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def _templates(client: Any, gallery_id: uuid.UUID) -> dict[str, int]:
    with client.app.state.container.engine.connect() as conn:
        return reindex.coverage_counts(conn, gallery_id)


class Interrupted(KeyboardInterrupt):
    pass


def test_reindex_while_verifying_then_activate_and_rollback(
    client: Any, gallery: dict[str, Any]
) -> None:
    components = client.app.state.container.components
    engine, index, store = components.engine, components.index, components.image_store
    reembed = PipelineReembedder(components.pipeline)
    gid = gallery["id"]
    probe = IDS / "obama" / "obama4.jpg"
    before = {p: _verify(client, gallery, probe, p) for p in ("obama", "biden")}
    assert before["obama"]["match"] and not before["biden"]["match"]
    assert before["obama"]["model_id"] == OLD

    # A thread keeps verifying for the whole reindex; every answer must be a 200.
    stop, answers, errors = threading.Event(), [], []

    def keep_verifying() -> None:
        while not stop.is_set():
            try:
                answers.append(_verify(client, gallery, probe, "obama"))
            except AssertionError as exc:  # a failed request
                errors.append(exc)

    verifier = threading.Thread(target=keep_verifying)
    verifier.start()
    try:
        job_id = reindex.start(engine, index, components.pipeline, gallery_id=gid, to_model=NEW)
        assert reindex.start(engine, index, components.pipeline, gallery_id=gid, to_model=NEW) == (
            job_id
        )  # idempotent

        # Interrupt the first run after one batch, as Ctrl-C would.
        def interrupt(progress: reindex.Progress) -> None:
            if progress.done > 0:
                raise Interrupted

        with pytest.raises(Interrupted):
            reindex.run(engine, index, store, reembed, gallery_id=gid, batch_size=3,
                        on_progress=interrupt)  # fmt: skip
        assert _templates(client, gid) == {OLD: 8, NEW: 3}

        # Enrollment during the reindex is written for both models.
        new_face = client.post(
            f"/v1/galleries/{gid}/subjects/{gallery['subjects']['obama']}/faces",
            files=_upload(IDS / "obama" / "obama3.jpg"),
            headers=gallery["headers"],
        )
        assert new_face.status_code == 201, new_face.text
        assert _templates(client, gid) == {OLD: 9, NEW: 4}

        # A missing original is reported as a failure with its reason, not a crash.
        with engine.connect() as conn:
            victim, key = conn.execute(
                text(
                    "SELECT f.id, f.image_key FROM faces f WHERE f.gallery_id = :g AND NOT EXISTS"
                    " (SELECT 1 FROM templates t WHERE t.face_id = f.id AND t.model_id = :m)"
                    " ORDER BY f.id LIMIT 1"
                ),
                {"g": gid, "m": NEW},
            ).one()
        original = store.get(key)
        store.delete(key)

        resumed = reindex.run(
            engine, index, store, reembed, gallery_id=gid, batch_size=3, threads=2
        )
        assert resumed.already_done == 4  # it continued where it stopped
        assert resumed.embedded == 4 and list(resumed.failed) == [str(victim)]
        assert "original unavailable" in resumed.failed[str(victim)]
        with pytest.raises(Conflict):
            reindex.activate(engine, gallery_id=gid)  # one face still lacks a template

        store.put(key, original)
        again = reindex.run(engine, index, store, reembed, gallery_id=gid, batch_size=3)
        assert again.already_done == 8 and again.embedded == 1 and not again.failed
        assert _templates(client, gid) == {OLD: 9, NEW: 9}

        report = reindex.report(
            engine, gallery_id=gid, threshold=components.threshold, job_id=job_id
        )
        assert report.coverage.complete and report.coverage.failed == {}
        shadow = report.shadow
        assert shadow.faces_compared == 9
        assert shadow.same_subject.pairs == 3 + 1 + 1 + 1  # obama has 3 faces now
        assert shadow.different_subject.pairs == 36 - shadow.same_subject.pairs
        # The ONNX graph is the same network: it decides the gallery's pairs alike.
        assert shadow.same_subject.agreement == 1.0 and shadow.different_subject.agreement == 1.0
        assert shadow.same_subject.new_match_rate == 1.0
        assert shadow.different_subject.lost_matches == shadow.different_subject.new_matches == 0

        assert reindex.activate(engine, gallery_id=gid) == NEW
    finally:
        stop.set()
        verifier.join()
    assert errors == [] and len(answers) > 0
    assert all(a["match"] for a in answers)
    assert {a["model_id"] for a in answers} <= {OLD, NEW}

    after = {p: _verify(client, gallery, probe, p) for p in ("obama", "biden")}
    assert after["obama"]["model_id"] == NEW and after["obama"]["match"]
    assert not after["biden"]["match"]
    found = client.post(
        f"/v1/galleries/{gid}/search", files=_upload(probe), headers=gallery["headers"]
    ).json()
    assert found["model_id"] == NEW
    assert found["candidates"][0]["subject_id"] == gallery["subjects"]["obama"]
    with engine.connect() as conn:
        job = conn.execute(
            text("SELECT status, result FROM jobs WHERE id = :id"), {"id": job_id}
        ).one()
    assert job.status == "done" and job.result["shadow"]["faces_compared"] == 9

    assert reindex.rollback(engine, gallery_id=gid) == OLD
    restored = {p: _verify(client, gallery, probe, p) for p in ("obama", "biden")}
    for person in ("obama", "biden"):
        assert restored[person]["model_id"] == OLD
        assert restored[person]["match"] == before[person]["match"]
        assert restored[person]["similarity"] == pytest.approx(before[person]["similarity"])

    # Roll forward again, then drop the old index: no rollback after that.
    assert reindex.rollback(engine, gallery_id=gid) == NEW
    assert reindex.drop_old(engine, index, gallery_id=gid) == 9
    assert _templates(client, gid) == {NEW: 9}
    with pytest.raises(Unprocessable):
        reindex.rollback(engine, gallery_id=gid)
    assert _verify(client, gallery, probe, "obama")["match"]


def test_reindex_refuses_unknown_models_and_a_second_target(
    client: Any, gallery: dict[str, Any]
) -> None:
    components = client.app.state.container.components
    engine, index, pipeline = components.engine, components.index, components.pipeline
    gid = gallery["id"]
    with pytest.raises(Unprocessable):
        reindex.start(engine, index, pipeline, gallery_id=gid, to_model="no-such-model")
    with pytest.raises(Unprocessable):
        reindex.start(engine, index, pipeline, gallery_id=gid, to_model=OLD)  # already active
    with pytest.raises(Unprocessable):
        reindex.activate(engine, gallery_id=gid)  # nothing pending
    reindex.start(engine, index, pipeline, gallery_id=gid, to_model=NEW)
    with pytest.raises(Conflict):
        reindex.start(engine, index, pipeline, gallery_id=gid, to_model="arcface-onnx")
    # Cancelling removes the pending model's templates and frees the gallery.
    reindex.run(engine, index, components.image_store, PipelineReembedder(pipeline),
                gallery_id=gid, batch_size=16)  # fmt: skip
    assert reindex.cancel(engine, index, gallery_id=gid) == 8
    assert _templates(client, gid) == {OLD: 8}


def test_two_reindexers_of_one_gallery_do_not_run_at_once(
    client: Any, gallery: dict[str, Any]
) -> None:
    components = client.app.state.container.components
    engine = components.engine
    reindex.start(engine, components.index, components.pipeline, gallery_id=gallery["id"],
                  to_model=NEW)  # fmt: skip
    with exclusive(engine, gallery["id"]):  # noqa: SLF001 - hold the lock
        with pytest.raises(reindex.ReindexBusy):
            reindex.run(
                engine,
                components.index,
                components.image_store,
                PipelineReembedder(components.pipeline),
                gallery_id=gallery["id"],
            )


def test_reindex_cli_explains_itself_and_checks_arguments() -> None:
    from typer.testing import CliRunner

    from service.cli.main import app

    runner = CliRunner()
    help_text = runner.invoke(app, ["reindex", "--help"], env={"COLUMNS": "200"}).output
    for command in ("start", "activate", "rollback", "drop-old", "cancel", "status"):
        assert command in help_text
    start_help = runner.invoke(app, ["reindex", "start", "--help"], env={"COLUMNS": "200"})
    assert "--to-model" in start_help.output and "--gallery" in start_help.output
    bad = runner.invoke(
        app, ["reindex", "--gallery", str(uuid.uuid4()), "--activate", "--rollback"]
    )
    assert bad.exit_code == 2 and "exactly one" in bad.output


ONNX = "dlib-resnet-v1-onnx"


def _stored(face: Any, *, with_shape: bool = True) -> reindex.StoredFace:
    from service.domain.enrollment import face_metadata

    meta = face_metadata(face)
    return reindex.StoredFace(
        face_id=uuid.uuid4(),
        subject_id=uuid.uuid4(),
        image_key="unused",
        bbox=meta["bbox"] if with_shape else None,  # type: ignore[arg-type]
        landmarks=meta["landmarks"] if with_shape else None,  # type: ignore[arg-type]
    )


def test_reembedding_uses_the_stored_face_not_a_new_detection(pipeline: Any) -> None:
    """A reindex cuts the enrolled face at its stored box and landmarks: the embedding
    is the one enrollment made, also for the smaller face of a two-person photo (which
    a fresh detection would not pick as the largest) and for a rolled head."""
    import cv2
    import numpy as np

    reembed = PipelineReembedder(pipeline)
    photos = [
        (FACES_DIR / "identities" / "biden" / "biden1.jpg").read_bytes(),
        (FACES_DIR / "multi" / "obama_and_biden.jpg").read_bytes(),
    ]
    upright = cv2.imdecode(np.frombuffer(photos[0], np.uint8), cv2.IMREAD_COLOR)
    h, w = upright.shape[:2]
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), 40, 1.0)
    photos.append(cv2.imencode(".png", cv2.warpAffine(upright, turn, (w, h)))[1].tobytes())
    checked = 0
    for data in photos:
        faces = pipeline.analyze(data, model_ids=[ONNX])
        assert faces
        face = faces[-1]  # the smallest face of the photo
        (got,) = reembed([(_stored(face), data)], ONNX)
        assert isinstance(got, np.ndarray)
        assert float(got @ face.embeddings[ONNX]) > 0.999
        checked += 1
    assert checked == 3


def test_reembedding_a_row_without_a_stored_box_detects_again(pipeline: Any) -> None:
    import numpy as np

    data = (FACES_DIR / "identities" / "obama" / "obama1.jpg").read_bytes()
    (face,) = pipeline.analyze(data, model_ids=[ONNX])
    (got,) = PipelineReembedder(pipeline)([(_stored(face, with_shape=False), data)], ONNX)
    assert isinstance(got, np.ndarray) and float(got @ face.embeddings[ONNX]) > 0.999
    (bad,) = PipelineReembedder(pipeline)([(_stored(face), b"not an image")], ONNX)
    assert isinstance(bad, Exception)
