"""A pipeline call that runs alone may give the detector and the ONNX embedder a second
thread; calls that overlap get one each. Either way the answers are the same."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from indexing.call_threads import CallGauge, call_threads
from tests.conftest import FACES_DIR

ONNX = "dlib-resnet-v1-onnx"


def test_a_lone_call_gets_the_idle_threads_overlapping_calls_one() -> None:
    gauge = CallGauge(idle_threads=2)
    assert call_threads() == 1
    with gauge.call() as alone:
        assert alone == 2 and call_threads() == 2
        seen: list[int] = []
        inside = threading.Event()
        release = threading.Event()

        def second() -> None:
            with gauge.call() as threads:
                seen.append(threads)
                seen.append(call_threads())
                inside.set()
                release.wait(5)

        t = threading.Thread(target=second)
        t.start()
        assert inside.wait(5)
        assert call_threads() == 2  # this call keeps what it started with
        release.set()
        t.join()
    assert seen == [1, 1]
    assert call_threads() == 1
    with gauge.call() as again:
        assert again == 2  # alone again once the others are done


def test_two_threads_give_the_same_faces_and_embeddings(pipeline: Any) -> None:
    data = (FACES_DIR / "multi" / "obama_and_biden.jpg").read_bytes()
    image = pipeline.decode(data)
    embedder = pipeline.models.embedder(ONNX)

    one = CallGauge(idle_threads=1)
    two = CallGauge(idle_threads=2)
    with one.call():
        faces_1 = pipeline.detector.detect(image)
    with two.call():
        faces_2 = pipeline.detector.detect(image)
    assert len(faces_1) == len(faces_2) == 3
    for a, b in zip(faces_1, faces_2, strict=True):
        assert abs(a.bbox.left - b.bbox.left) < 0.5 and abs(a.bbox.width - b.bbox.width) < 0.5

    (face,) = pipeline.analyze(
        (FACES_DIR / "identities" / "biden" / "biden1.jpg").read_bytes(), model_ids=[ONNX]
    )
    chips = [np.zeros((150, 150, 3), np.uint8), _chip(pipeline, face)]
    with one.call():
        v1 = embedder.embed(chips)
    with two.call():
        v2 = embedder.embed(chips)
    assert 2 in _loaded_widths(embedder.runtime)  # the two-thread variant ran
    assert np.all(np.sum(v1 * v2, axis=1) > 0.99999)


def _loaded_widths(runtime: Any) -> set[int]:
    """The thread counts a graph runtime has a session (compiled model) for."""
    return set(getattr(runtime, "_sessions", None) or runtime._compiled)


def _chip(pipeline: Any, face: Any) -> np.ndarray:
    from indexing.align import dlib_chip

    image = pipeline.decode((FACES_DIR / "identities" / "biden" / "biden1.jpg").read_bytes())
    shape = pipeline.landmarks.predict(image, _detection(face))
    return dlib_chip(image, face.bbox, shape)


def _detection(face: Any) -> Any:
    from indexing.detection.base import Detection

    return Detection(bbox=face.bbox, score=face.score)
