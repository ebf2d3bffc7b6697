"""The ArcFace ONNX path end to end on the CPU, with a tiny graph of ArcFace's
signature built here (input (n, 3, 112, 112) float32, output (n, 512))."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from indexing.align import ARCFACE_TEMPLATE, similarity_transform
from indexing.embedders.arcface_onnx import find_arcface_model
from indexing.errors import ModelUnavailable
from indexing.graph_runtimes import onnx_providers
from indexing.pipeline import FacePipeline, PipelineConfig, build_pipeline
from tests.conftest import FACES_DIR

ARC = "arcface-onnx"
DLIB = "dlib-resnet-v1"


def _tiny_graph(path: Path, *, size: int = 112, out_dim: int = 512) -> None:
    rng = np.random.default_rng(7)
    conv_w = rng.normal(0, 0.1, (8, 3, 8, 8)).astype(np.float32)
    cells = (size // 8) ** 2 * 8
    fc_w = rng.normal(0, 0.05, (cells, out_dim)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["input.1", "conv_w"], ["c"], strides=[8, 8]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"]),
        helper.make_node("MatMul", ["f", "fc_w"], ["683"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny-arcface",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["n", 3, size, size])],
        [helper.make_tensor_value_info("683", TensorProto.FLOAT, ["n", out_dim])],
        [numpy_helper.from_array(conv_w, "conv_w"), numpy_helper.from_array(fc_w, "fc_w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pack") / "buffalo_tiny"
    root.mkdir()
    _tiny_graph(root / "det_10g.onnx", size=640, out_dim=16)  # a detector-shaped decoy
    _tiny_graph(root / "w600k_r50.onnx")
    return root.parent


@pytest.fixture(scope="module")
def pipeline(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> FacePipeline:
    return build_pipeline(
        PipelineConfig(model_dir=model_dir, cache_dir=tmp_path_factory.mktemp("cache"))
    )


def test_finds_the_recognition_graph_in_a_pack(model_dir: Path, tmp_path: Path) -> None:
    assert find_arcface_model(model_dir).name == "w600k_r50.onnx"
    with pytest.raises(ModelUnavailable):
        find_arcface_model(tmp_path)
    assert onnx_providers()[-1] == "CPUExecutionProvider"


def test_two_models_in_one_call(pipeline: FacePipeline) -> None:
    data = (FACES_DIR / "multi" / "kit_with_rose.jpg").read_bytes()
    faces = pipeline.analyze(data, model_ids=[DLIB, ARC])
    assert len(faces) == 2
    for face in faces:
        assert face.embeddings[DLIB].shape == (128,)
        vector = face.embeddings[ARC]
        assert vector.shape == (512,) and vector.dtype == np.float32
        assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
    # Two different faces: two different vectors from the same graph.
    assert float(faces[0].embeddings[ARC] @ faces[1].embeddings[ARC]) < 0.9999
    assert pipeline.spec(ARC).dim == 512


def test_batched_equals_one_by_one(pipeline: FacePipeline) -> None:
    paths = [FACES_DIR / "identities" / "biden" / n for n in ("biden1.jpg", "biden2.jpg")]
    batch = pipeline.analyze_many([p.read_bytes() for p in paths], model_ids=[ARC])
    for path, faces in zip(paths, batch, strict=True):
        assert isinstance(faces, list)
        alone = pipeline.analyze(path.read_bytes(), model_ids=[ARC])
        assert np.allclose(faces[0].embeddings[ARC], alone[0].embeddings[ARC], atol=1e-5)


def test_arcface_alignment_puts_landmarks_on_the_template(pipeline: FacePipeline) -> None:
    face = pipeline.detect((FACES_DIR / "identities" / "obama" / "obama1.jpg").read_bytes())[0]
    m = similarity_transform(face.landmarks, ARCFACE_TEMPLATE)
    mapped = face.landmarks @ m[:, :2].T + m[:, 2]
    # The eyes (measured, not estimated) land within 3 px of ArcFace's template.
    assert np.abs(mapped[:2] - ARCFACE_TEMPLATE[:2]).max() < 3.0
