"""The face pipeline end to end on the shared photos: detection (all 25 faces, no
false positives), hard inputs, roll and EXIF orientation, quality, enrollment
errors, batching, threads and metrics. Embeddings are kept to a few dozen (dlib
takes ~70 ms each here)."""

from __future__ import annotations

import io
import itertools
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFilter
from prometheus_client import CollectorRegistry

from indexing.errors import CorruptImage, LowQuality, ModelUnavailable, MultipleFaces, NoFace
from indexing.face_choice import select_enrollment_face
from indexing.pipeline import FacePipeline, PipelineConfig, build_pipeline
from indexing.timings import STAGES, StageTimings
from tests.conftest import FACES_DIR

DLIB = "dlib-resnet-v1"
IDENTITIES = sorted((FACES_DIR / "identities").glob("*/*"))
MULTI = {"obama_and_biden.jpg": 3, "kit_with_rose.jpg": 2, "two_people.jpg": 2}


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture(scope="module")
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture(scope="module")
def pipeline(registry: CollectorRegistry, tmp_path_factory: pytest.TempPathFactory) -> FacePipeline:
    config = PipelineConfig(cache_dir=tmp_path_factory.mktemp("cache"))
    return build_pipeline(config, metrics_registry=registry)


@pytest.fixture(scope="module")
def identity_embeddings(pipeline: FacePipeline) -> dict[Path, np.ndarray]:
    items = [p.read_bytes() for p in IDENTITIES]
    results = pipeline.analyze_many(items, model_ids=[DLIB])
    out = {}
    for path, faces in zip(IDENTITIES, results, strict=True):
        assert isinstance(faces, list) and len(faces) == 1, path.name
        out[path] = faces[0].embeddings[DLIB]
    return out


def test_one_face_in_every_identity_photo(pipeline: FacePipeline) -> None:
    assert len(IDENTITIES) == 18
    for path in IDENTITIES:
        faces = pipeline.detect(path.read_bytes())
        assert len(faces) == 1, f"{path.name}: {len(faces)} faces"
        face = faces[0]
        assert face.landmarks.shape == (5, 2) and face.landmarks.dtype == np.float32
        assert face.bbox.width > 40 and 0.5 < face.score <= 1.0


def test_group_photos_all_faces_no_false_positives(pipeline: FacePipeline) -> None:
    for name, expected in MULTI.items():
        faces = pipeline.detect((FACES_DIR / "multi" / name).read_bytes())
        assert len(faces) == expected, name
        areas = [f.bbox.width * f.bbox.height for f in faces]
        assert areas == sorted(areas, reverse=True)
    # The child at the lower right of obama_and_biden.jpg, head tilted down.
    faces = pipeline.detect((FACES_DIR / "multi" / "obama_and_biden.jpg").read_bytes())
    assert any(f.bbox.left > 1500 and f.bbox.top > 1000 for f in faces)


def test_max_faces_keeps_the_largest(pipeline: FacePipeline) -> None:
    data = (FACES_DIR / "multi" / "obama_and_biden.jpg").read_bytes()
    everyone = pipeline.detect(data)
    two = pipeline.detect(data, max_faces=2)
    assert [f.bbox for f in two] == [f.bbox for f in everyone[:2]]


def test_find_faces_is_a_pipeline_call_with_the_detectors_boxes(
    pipeline: FacePipeline, registry: CollectorRegistry
) -> None:
    """Boxes alone (liveness frames): the detector's faces in the pipeline's order, run
    as a pipeline call, so they take the call's threads and show in the detect metric."""
    image = _rgb(FACES_DIR / "multi" / "obama_and_biden.jpg")
    sample = ("faceprint_pipeline_stage_seconds_count", {"stage": "detect"})
    before = registry.get_sample_value(*sample) or 0
    seen: list[int] = []
    detect = pipeline.detector.detect

    def watched(img: np.ndarray) -> list:
        seen.append(pipeline.gauge.in_flight)
        return detect(img)

    pipeline.detector.detect = watched  # type: ignore[method-assign]
    try:
        boxes = pipeline.find_faces(image)
    finally:
        del pipeline.detector.detect
    assert seen == [1], "the detector must run inside a counted pipeline call"
    assert [d.bbox for d in boxes] == [f.bbox for f in pipeline.detect_image(image)]
    assert registry.get_sample_value(*sample) == before + 2  # find_faces, detect_image


def test_hard_inputs_give_a_face_or_nothing(pipeline: FacePipeline) -> None:
    for path in sorted((FACES_DIR / "hard").glob("*")):
        faces = pipeline.analyze(path.read_bytes(), model_ids=[DLIB])
        assert len(faces) <= 1, path.name
        for face in faces:
            assert np.isfinite(face.embeddings[DLIB]).all()
    blank = _png(np.full((300, 400, 3), 128, dtype=np.uint8))
    assert pipeline.analyze(blank, model_ids=[DLIB]) == []


def test_all_identity_pairs_separated_by_default_threshold(
    pipeline: FacePipeline, identity_embeddings: dict[Path, np.ndarray]
) -> None:
    threshold = pipeline.spec(DLIB).threshold
    pairs = list(itertools.combinations(identity_embeddings, 2))
    assert len(pairs) == 153
    wrong = []
    for a, b in pairs:
        similarity = float(identity_embeddings[a] @ identity_embeddings[b])
        same = a.parent.name == b.parent.name
        if (similarity >= threshold) != same:
            wrong.append((a.name, b.name, round(similarity, 3)))
    assert not wrong, wrong


def test_embeddings_are_unit_vectors(identity_embeddings: dict[Path, np.ndarray]) -> None:
    for vector in identity_embeddings.values():
        assert vector.shape == (128,) and vector.dtype == np.float32
        assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5


def _rotated(image: np.ndarray, degrees: float) -> np.ndarray:
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(h * s + w * c), int(h * c + w * s)
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    return cv2.warpAffine(image, m, (nw, nh))


@pytest.mark.parametrize("degrees", [70, 90])
def test_rolled_face_keeps_its_identity(
    pipeline: FacePipeline, identity_embeddings: dict[Path, np.ndarray], degrees: int
) -> None:
    """dlib's predictor alone gives another person's embedding here (≈ 0.86)."""
    path = FACES_DIR / "identities" / "obama" / "obama1.jpg"
    faces = pipeline.analyze(_png(_rotated(_rgb(path), degrees)), model_ids=[DLIB])
    assert len(faces) == 1
    similarity = float(faces[0].embeddings[DLIB] @ identity_embeddings[path])
    assert similarity > 0.98


def test_exif_orientation_applied_before_detection(
    pipeline: FacePipeline, identity_embeddings: dict[Path, np.ndarray]
) -> None:
    path = FACES_DIR / "identities" / "biden" / "biden2.jpg"
    upright = _rgb(path)
    stored = np.ascontiguousarray(np.rot90(upright, k=1))  # as a sideways camera stores it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    buf = io.BytesIO()
    Image.fromarray(stored).save(buf, "JPEG", quality=95, exif=exif.tobytes())
    faces = pipeline.analyze(buf.getvalue(), model_ids=[DLIB])
    assert len(faces) == 1
    assert float(faces[0].embeddings[DLIB] @ identity_embeddings[path]) > 0.97


def test_quality_reports_actionable_problems(pipeline: FacePipeline) -> None:
    with Image.open(FACES_DIR / "identities" / "obama" / "obama6_240p.jpg") as im:
        buf = io.BytesIO()
        im.convert("RGB").resize((im.width * 3 // 4, im.height * 3 // 4)).save(buf, "PNG")
    small = pipeline.detect(buf.getvalue())
    # The face is ~43 px wide; the exact pixel count moves with the detector's box.
    (problem,) = small[0].quality.problems
    assert re.fullmatch(r"face too small: 4\d px, need 56", problem)
    with pytest.raises(LowQuality) as err:
        select_enrollment_face(small)
    assert problem in err.value.problems

    path = FACES_DIR / "identities" / "kit_harington" / "kit3.jpg"
    sharp = pipeline.detect(path.read_bytes())[0].quality
    with Image.open(path) as im:
        buf = io.BytesIO()
        im.convert("RGB").filter(ImageFilter.GaussianBlur(6)).save(buf, "PNG")
    blurred = pipeline.detect(buf.getvalue())
    assert blurred, "a blurred face is still found"
    q = blurred[0].quality
    assert q.sharpness < sharp.sharpness / 5 and q.score < sharp.score
    assert any(p.startswith("image too blurry") for p in q.problems)
    assert sharp.problems == [] and 0.0 <= q.score <= 1.0


def test_enrollment_selection_errors(pipeline: FacePipeline) -> None:
    with pytest.raises(NoFace):
        select_enrollment_face([])
    group = pipeline.detect((FACES_DIR / "multi" / "two_people.jpg").read_bytes())
    with pytest.raises(MultipleFaces) as err:
        select_enrollment_face(group)
    assert err.value.count == 2
    one = pipeline.detect((FACES_DIR / "identities" / "rose_leslie" / "rose2.jpg").read_bytes())
    assert select_enrollment_face(one).face is one[0]


def test_analyze_many_matches_analyze_and_isolates_bad_items(
    pipeline: FacePipeline, identity_embeddings: dict[Path, np.ndarray]
) -> None:
    group = (FACES_DIR / "multi" / "kit_with_rose.jpg").read_bytes()
    single = IDENTITIES[0]
    results = pipeline.analyze_many([group, b"not an image", single.read_bytes()], model_ids=[DLIB])
    assert isinstance(results[1], Exception)
    assert isinstance(results[0], list) and len(results[0]) == 2
    assert isinstance(results[2], list)
    alone = pipeline.analyze(group, model_ids=[DLIB])
    for a, b in zip(results[0], alone, strict=True):
        assert np.allclose(a.embeddings[DLIB], b.embeddings[DLIB], atol=1e-5)
    assert np.allclose(results[2][0].embeddings[DLIB], identity_embeddings[single], atol=1e-5)


def test_bad_bytes_give_typed_errors(pipeline: FacePipeline) -> None:
    data = (FACES_DIR / "identities" / "kit_harington" / "kit2.jpg").read_bytes()
    with pytest.raises(CorruptImage):
        pipeline.detect(data[: len(data) // 3])


def test_safe_from_several_threads(pipeline: FacePipeline) -> None:
    paths = [FACES_DIR / "multi" / n for n in MULTI] + IDENTITIES[:5]
    expected = [[f.bbox for f in pipeline.detect(p.read_bytes())] for p in paths]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda p: [f.bbox for f in pipeline.detect(p.read_bytes())], paths * 2))
    assert got == expected * 2


def test_stage_timings_recorded_and_exported(
    pipeline: FacePipeline, registry: CollectorRegistry
) -> None:
    timings = StageTimings()
    pipeline.analyze(
        (FACES_DIR / "identities" / "rose_leslie" / "rose1.jpg").read_bytes(),
        model_ids=[DLIB],
        timings=timings,
    )
    assert set(timings.seconds) == set(STAGES)
    assert all(v > 0 for v in timings.seconds.values())
    for stage in STAGES:
        count = registry.get_sample_value(
            "faceprint_pipeline_stage_seconds_count", {"stage": stage}
        )
        assert count and count >= 1


def test_registry_and_unavailable_models(pipeline: FacePipeline) -> None:
    assert {"dlib-resnet-v1", "arcface-onnx"} <= set(pipeline.models.ids())
    spec = pipeline.spec(DLIB)
    assert spec.dim == 128 and spec.metric == "cosine" and 0 < spec.threshold < 1
    with pytest.raises(ModelUnavailable):
        pipeline.spec("no-such-model")
    with pytest.raises(ModelUnavailable, match="FACEPRINT_MODEL_DIR"):
        pipeline.models.embedder("arcface-onnx")
    data = (FACES_DIR / "identities" / "rose_leslie" / "rose1.jpg").read_bytes()
    with pytest.raises(ModelUnavailable):
        pipeline.analyze(data, model_ids=["no-such-model"])


def test_mirror_averaging_has_its_own_calibrated_threshold(tmp_path: Path) -> None:
    plain = build_pipeline(PipelineConfig(cache_dir=tmp_path))
    flipped = build_pipeline(PipelineConfig(cache_dir=tmp_path, flip_average=True))
    assert plain.spec(DLIB).threshold != flipped.spec(DLIB).threshold
    assert "mirror" in flipped.spec(DLIB).calibrated_on
    data = (FACES_DIR / "identities" / "rose_leslie" / "rose2.jpg").read_bytes()
    a = plain.analyze(data, model_ids=[DLIB])[0].embeddings[DLIB]
    b = flipped.analyze(data, model_ids=[DLIB])[0].embeddings[DLIB]
    assert 0.97 < float(a @ b) < 0.99999  # the same space, not the same vector
