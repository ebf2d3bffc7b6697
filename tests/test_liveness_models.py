"""The vendored mesh and iris models on real photos, the passive signals, and the
operator ONNX anti-spoofing path with a tiny graph of the MiniFASNet signature."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

from liveness import synthesis
from liveness.features import FeatureExtractor
from liveness.frames import CONTINUITY_MAX_ERROR, measure_frame
from liveness.mesh import FACE_MESH_MODEL, IRIS_MODEL, MODELS_DIR
from liveness.passive import signals
from liveness.passive.check import PassiveChecker
from liveness.passive.onnx_model import MODEL_FILE, OnnxAntiSpoof, load_operator_model
from tests.conftest import FACES_DIR

OBAMA = FACES_DIR / "identities" / "obama" / "obama1.jpg"
KIT = FACES_DIR / "identities" / "kit_harington" / "kit2.jpg"


@pytest.fixture(scope="module")
def extractor() -> FeatureExtractor:
    return FeatureExtractor()


def load(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def dlib_box(image: np.ndarray) -> tuple[float, float, float, float]:
    import dlib

    rect = dlib.get_frontal_face_detector()(image, 1)[0]
    return (rect.left(), rect.top(), rect.right(), rect.bottom())


def test_vendored_models_match_their_provenance() -> None:
    provenance = (MODELS_DIR / "PROVENANCE.md").read_text()
    for path in (FACE_MESH_MODEL, IRIS_MODEL):
        assert hashlib.sha256(path.read_bytes()).hexdigest() in provenance
    assert "Apache License" in (MODELS_DIR / "LICENSE").read_text()


def test_mesh_and_iris_on_a_frontal_photo(extractor: FeatureExtractor) -> None:
    image = load(OBAMA)
    box = dlib_box(image)
    mesh = extractor.mesh(image, box)
    assert mesh is not None and mesh.presence > 0.9
    assert mesh.points.shape == (468, 3)
    left, top, right, bottom = box
    inside = (
        (mesh.points[:, 0] > left - 0.3 * (right - left))
        & (mesh.points[:, 0] < right + 0.3 * (right - left))
        & (mesh.points[:, 1] > top - 0.5 * (bottom - top))
        & (mesh.points[:, 1] < bottom + 0.3 * (bottom - top))
    )
    assert inside.all()
    features = extractor(image, box)
    assert features is not None
    assert 0.15 < features.ear < 0.4
    assert 0.2 < features.iris_visibility <= 1.0
    assert abs(features.yaw) < 8 and abs(features.pitch) < 15


def test_yaw_sign_follows_the_image(extractor: FeatureExtractor) -> None:
    image = load(KIT)  # kit2 looks to his right
    mirrored = np.ascontiguousarray(image[:, ::-1])
    a = extractor(image, dlib_box(image))
    b = extractor(mirrored, dlib_box(mirrored))
    assert a is not None and b is not None
    assert a.yaw < -10 and b.yaw > 10
    assert a.yaw == pytest.approx(-b.yaw, abs=4)


def test_mesh_finds_no_face_in_a_blank_image(extractor: FeatureExtractor) -> None:
    blank = np.full((480, 640, 3), 127, np.uint8)
    assert extractor(blank, (200, 120, 440, 360)) is None


def test_rendered_head_turn_and_look_up_are_measured(extractor: FeatureExtractor) -> None:
    image = load(OBAMA)
    box = dlib_box(image)
    mesh = extractor.mesh(image, box)
    assert mesh is not None
    base = extractor(image, box)
    left = extractor(synthesis.render_pose(image, mesh.points, 25), box)
    up = extractor(synthesis.render_pose(image, mesh.points, 0, 20), box)
    assert base is not None and left is not None and up is not None
    assert left.yaw - base.yaw > 12
    assert up.pitch - base.pitch > 8


def test_continuity_follows_one_face_and_breaks_on_a_swap(extractor: FeatureExtractor) -> None:
    def frame(path: Path) -> np.ndarray:
        image = load(path)
        return synthesis.camera_frame(image, dlib_box(image))

    obama, kit = frame(OBAMA), frame(KIT)
    box = dlib_box(obama)
    mesh = extractor.mesh(obama, box)
    assert mesh is not None
    first = measure_frame(extractor, obama, box, None)
    turn = synthesis.render_pose(obama, mesh.points, 8)
    turned = measure_frame(extractor, turn, box, first.track)
    assert turned.continuous and turned.step is not None
    assert turned.step.error <= CONTINUITY_MAX_ERROR
    swapped = measure_frame(extractor, kit, dlib_box(kit), first.track)
    assert swapped.features is not None and not swapped.continuous
    assert swapped.step is not None and swapped.step.error > 2 * CONTINUITY_MAX_ERROR
    # Without the iris model the frame has every other feature, and no iris visibility.
    bare = measure_frame(extractor, obama, box, first.track, iris=False)
    assert bare.features is not None and bare.features.iris_visibility is None
    assert bare.features.yaw == pytest.approx(first.features.yaw, abs=1.0)


def test_lbp_codes_and_texture() -> None:
    flat = np.full((10, 10), 100, np.uint8)
    assert (signals.lbp_codes(flat) == 255).all()
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    smooth = np.full((64, 64, 3), 120, np.uint8)
    assert signals.texture(noisy).raw["non_uniform_lbp"] > 0.3
    assert signals.texture(smooth).raw["non_uniform_lbp"] == 0.0


def test_frequency_sees_a_pixel_grid_and_colour_sees_glare() -> None:
    image = load(OBAMA)
    x0, y0, x1, y1 = (int(v) for v in dlib_box(image))
    face = np.ascontiguousarray(image[y0:y1, x0:x1][:160, :160])
    grid = face.astype(np.float64)
    grid[:, ::3] *= 0.7
    grid[::3, :] *= 0.7
    clean = signals.frequency(face)
    gridded = signals.frequency(grid.astype(np.uint8))
    assert gridded.raw["spectral_peak"] > clean.raw["spectral_peak"] + 1
    assert gridded.attack > 0.5 > clean.attack
    glare = face.copy()
    glare[20:90, 20:90] = 255
    assert signals.colour(glare).raw["specular_fraction"] > 0.1
    assert signals.colour(glare).attack > signals.colour(face).attack


@pytest.mark.parametrize("n", [16, 27, 64, 101, 128])
def test_ring_medians_match_numpy_median(n: int) -> None:
    """The vectorised ring medians of the frequency signal equal the per-ring np.median
    they replace, exactly."""
    rng = np.random.default_rng(n)
    spectrum = rng.gamma(2.0, 1.5, (n, n))
    spectrum[rng.integers(0, n, 5), rng.integers(0, n, 5)] += 6.0  # a few peaks
    yy, xx = np.mgrid[0:n, 0:n]
    fy, fx = (yy - n // 2) / n, (xx - n // 2) / n
    radius = np.hypot(fx, fy)
    band = (radius >= 0.12) & (radius <= 0.5) & (np.abs(fx) > 2 / n) & (np.abs(fy) > 2 / n)
    rings = np.round(radius * n).astype(int)
    prominence = np.zeros_like(spectrum)
    for r in np.unique(rings[band]):
        ring = band & (rings == r)
        prominence[ring] = spectrum[ring] - np.median(spectrum[ring])
    expected = float(prominence[band].max())
    assert signals._ring_prominence_peak(spectrum, signals._layout(n)) == expected


def tiny_antispoof(path: Path, weights: np.ndarray) -> None:
    """N×3×80×80 → channel means → N×3 logits: the MiniFASNet signature."""
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["input"], ["pooled"], axes=[2, 3], keepdims=0),
            helper.make_node("MatMul", ["pooled", "w"], ["output"]),
        ],
        "tiny-antispoof",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 80, 80])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor("w", TensorProto.FLOAT, [3, 3], weights.ravel().tolist())],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def test_operator_onnx_model_is_used_when_present(tmp_path: Path) -> None:
    assert load_operator_model(None) is None
    assert load_operator_model(tmp_path) is None
    # Class 1 ("live") gets the mean blue level, the others nothing: a grey image of
    # level v gives softmax(0, v, 0)[1].
    tiny_antispoof(tmp_path / MODEL_FILE, np.array([[0, 0.02, 0], [0, 0, 0], [0, 0, 0]], float))
    model = load_operator_model(tmp_path)
    assert isinstance(model, OnnxAntiSpoof) and (model.height, model.width) == (80, 80)
    grey = np.full((200, 200, 3), 100, np.uint8)
    expected = np.exp(2.0) / (np.exp(2.0) + 2)
    assert model.live_probability(grey, (50, 50, 150, 150)) == pytest.approx(expected, rel=1e-4)
    image = load(OBAMA)
    box = dlib_box(image)
    with_model = PassiveChecker(model)(image, box)
    without = PassiveChecker()(image, box)
    assert with_model.signals["model"]["file"] == MODEL_FILE
    live = with_model.signals["model"]["live_probability"]
    assert with_model.score == pytest.approx(0.7 * live + 0.3 * without.score, abs=1e-3)


def test_an_onnx_model_of_the_wrong_signature_is_refused(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["output"])],
        "wrong",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 128])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 128])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / MODEL_FILE))
    with pytest.raises(ValueError, match="N×3×H×W"):
        load_operator_model(tmp_path)
