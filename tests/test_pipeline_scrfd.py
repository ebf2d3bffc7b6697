"""SCRFD through the detector protocol, with a graph of SCRFD's signature built here:
its nine outputs are constants (plus 0 × the input) that place one face where
BlazeFace finds Obama's in obama1.jpg, so the decoding, the mapping back to image
pixels and the rest of the pipeline are checked against known numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from indexing.detection.scrfd import ANCHORS_PER_CELL, STRIDES, find_scrfd_model
from indexing.errors import ModelUnavailable
from indexing.pipeline import AnalyzedFace, FacePipeline, PipelineConfig, build_pipeline
from tests.conftest import FACES_DIR

PHOTO = FACES_DIR / "identities" / "obama" / "obama1.jpg"
SIZE = 640
DLIB = "dlib-resnet-v1"


def _constant_outputs(box: np.ndarray, kps: np.ndarray, scale: float) -> list[np.ndarray]:
    """SCRFD's outputs (scores, boxes, keypoints per stride) for one face."""
    box, kps = box * scale, kps * scale
    centre = (box[:2] + box[2:]) / 2
    scores, boxes, points = [], [], []
    for stride in STRIDES:
        cells = SIZE // stride
        n = cells * cells * ANCHORS_PER_CELL
        s = np.zeros((n, 1), np.float32)
        b = np.zeros((n, 4), np.float32)
        k = np.zeros((n, 10), np.float32)
        if stride == 32:
            cx, cy = (centre // stride).astype(int)
            i = (cy * cells + cx) * ANCHORS_PER_CELL
            anchor = np.array([cx, cy], np.float32) * stride
            s[i] = 0.9
            b[i] = np.concatenate([anchor - box[:2], box[2:] - anchor]) / stride
            k[i] = ((kps - anchor) / stride).ravel()
        scores.append(s)
        boxes.append(b)
        points.append(k)
    return scores + boxes + points


def _scrfd_graph(path: Path, outputs: list[np.ndarray]) -> None:
    nodes = [
        helper.make_node("ReduceMean", ["input.1"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["z"]),
    ]
    inits = [numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    outs = []
    for i, value in enumerate(outputs):
        inits.append(numpy_helper.from_array(value, f"c{i}"))
        nodes.append(helper.make_node("Add", [f"c{i}", "z"], [f"out{i}"]))
        outs.append(helper.make_tensor_value_info(f"out{i}", TensorProto.FLOAT, list(value.shape)))
    graph = helper.make_graph(
        nodes,
        "tiny-scrfd",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        outs,
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@pytest.fixture(scope="module")
def reference() -> tuple[FacePipeline, AnalyzedFace]:
    pipe = build_pipeline(PipelineConfig())
    face = pipe.analyze(PHOTO.read_bytes(), model_ids=[DLIB])[0]
    return pipe, face


@pytest.fixture(scope="module")
def pack(
    tmp_path_factory: pytest.TempPathFactory, reference: tuple[FacePipeline, AnalyzedFace]
) -> Path:
    _, face = reference
    b = face.bbox
    box = np.array([b.left, b.top - 0.1 * b.height, b.right, b.bottom], np.float32)
    kps = face.landmarks.astype(np.float32) + 1.5
    with Image.open(PHOTO) as im:
        w, h = im.size
    root = tmp_path_factory.mktemp("pack")
    _scrfd_graph(root / "det_10g.onnx", _constant_outputs(box, kps, SIZE / max(h, w)))
    np.save(root / "expected_kps.npy", kps)
    return root


def test_finds_the_detection_graph(pack: Path, tmp_path: Path) -> None:
    assert find_scrfd_model(pack).name == "det_10g.onnx"
    with pytest.raises(ModelUnavailable):
        find_scrfd_model(tmp_path)
    with pytest.raises(ModelUnavailable):
        build_pipeline(PipelineConfig(detector="scrfd"))


def test_scrfd_face_through_the_pipeline(
    pack: Path, reference: tuple[FacePipeline, AnalyzedFace]
) -> None:
    _, ref_face = reference
    pipe = build_pipeline(PipelineConfig(detector="scrfd", model_dir=pack))
    faces = pipe.analyze(PHOTO.read_bytes(), model_ids=[DLIB])
    assert len(faces) == 1
    face = faces[0]
    # SCRFD's own five points are reported, mapped back to image pixels.
    assert np.abs(face.landmarks - np.load(pack / "expected_kps.npy")).max() < 1.0
    assert abs(face.score - 0.9) < 1e-5
    # A box in SCRFD's convention, refitted to dlib's, gives the same identity.
    similarity = float(face.embeddings[DLIB] @ ref_face.embeddings[DLIB])
    assert similarity > 0.98
