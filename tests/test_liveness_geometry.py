"""Geometry on constructed landmarks: EAR, MAR, smile, head pose, homography planarity,
iris visibility and the depth-from-motion verdict."""

from __future__ import annotations

import math

import numpy as np
import pytest

from liveness import geometry as geo
from liveness import landmarks as lm
from liveness.depth import DepthPolicy, MotionPair, compare, similarity_residual, verdict
from liveness.synthesis import posed_points


def _eye(width: float, opening: float) -> np.ndarray:
    # p1 and p4 the corners, p2/p3 upper lid, p5/p6 lower lid.
    return np.array(
        [
            [0, 0],
            [width / 3, -opening / 2],
            [2 * width / 3, -opening / 2],
            [width, 0],
            [2 * width / 3, opening / 2],
            [width / 3, opening / 2],
        ],
        float,
    )


def test_eye_aspect_ratio_open_and_closed() -> None:
    assert geo.eye_aspect_ratio(_eye(30, 10)) == pytest.approx(10 / 30)
    assert geo.eye_aspect_ratio(_eye(30, 1)) == pytest.approx(1 / 30)
    assert geo.eye_aspect_ratio(np.zeros((6, 2))) == 0.0


def _blank_mesh() -> np.ndarray:
    return np.zeros((lm.NUM_MESH_POINTS, 3))


def test_eye_aspect_ratios_read_the_mesh_indices() -> None:
    mesh = _blank_mesh()
    mesh[list(lm.RIGHT_EYE_EAR), :2] = _eye(30, 9) + [100, 100]
    mesh[list(lm.LEFT_EYE_EAR), :2] = _eye(30, 3) + [160, 100]
    right, left = geo.eye_aspect_ratios(mesh)
    assert right == pytest.approx(0.3)
    assert left == pytest.approx(0.1)


def test_mouth_aspect_ratio_and_smile() -> None:
    mesh = _blank_mesh()
    a, b = lm.MOUTH_CORNERS_INNER
    mesh[a, :2], mesh[b, :2] = (100, 200), (140, 200)
    for up, down in lm.MOUTH_VERTICAL_PAIRS:
        mesh[up, :2], mesh[down, :2] = (120, 190), (120, 210)
    assert geo.mouth_aspect_ratio(mesh) == pytest.approx(0.5)
    mesh[lm.RIGHT_EYE_OUTER, :2], mesh[lm.LEFT_EYE_OUTER, :2] = (80, 100), (180, 100)
    o1, o2 = lm.MOUTH_CORNERS_OUTER
    mesh[o1, :2], mesh[o2, :2] = (95, 200), (155, 200)
    assert geo.eye_span(mesh) == pytest.approx(100)
    assert geo.smile_ratio(mesh) == pytest.approx(0.6)


def _head() -> np.ndarray:
    """A crude head: cheeks, forehead and chin on the face plane, nose in front."""
    mesh = _blank_mesh()
    mesh[lm.RIGHT_CHEEK] = (-70, 0, 10)
    mesh[lm.LEFT_CHEEK] = (70, 0, 10)
    mesh[lm.FOREHEAD] = (0, -90, 10)
    mesh[lm.CHIN] = (0, 90, 10)
    mesh[lm.NOSE_TIP] = (0, 10, -40)
    return mesh + np.array([320, 240, 0])


@pytest.mark.parametrize(("yaw", "pitch"), [(0, 0), (20, 0), (-25, 0), (0, 15), (10, -10)])
def test_head_pose_recovers_constructed_rotation(yaw: float, pitch: float) -> None:
    head = _head()
    # Rotate about the face plane's centre so the cheek and chin axes stay symmetric.
    centre = head[[lm.RIGHT_CHEEK, lm.LEFT_CHEEK, lm.FOREHEAD, lm.CHIN]].mean(axis=0)
    posed = posed_points(head - head.mean(axis=0) + centre, yaw, pitch)
    got_yaw, got_pitch = geo.head_pose(posed)
    # Yaw is read on the cheek axis after pitch: exact only when one of them is zero.
    tolerance = 0.5 if yaw == 0 or pitch == 0 else 3.0
    assert got_yaw == pytest.approx(yaw, abs=tolerance)
    assert got_pitch == pytest.approx(pitch, abs=tolerance)


def test_turning_left_moves_the_nose_to_image_right() -> None:
    posed = posed_points(_head(), 20, 0)
    assert posed[lm.NOSE_TIP, 0] > _head()[lm.NOSE_TIP, 0]
    assert geo.head_pose(posed)[0] > 0


def test_fit_homography_recovers_a_known_one() -> None:
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 200, (30, 2))
    h = np.array([[1.1, 0.05, 12], [-0.03, 0.95, -7], [2e-4, -1e-4, 1]])
    dst = geo.apply_homography(h, src)
    got = geo.fit_homography(src, dst)
    assert np.allclose(got, h, atol=1e-6)
    assert geo.planarity_residual(src, dst) < 1e-9
    with pytest.raises(ValueError):
        geo.fit_homography(src[:3], dst[:3])


def _pinhole(points: np.ndarray, yaw: float, focal: float = 800.0) -> np.ndarray:
    return posed_points(points, yaw, 0, focal=focal)[:, :2]


def _face_cloud(depth: float) -> np.ndarray:
    """60 points over a 160-px face; ``depth`` is the relief (nose to cheeks)."""
    rng = np.random.default_rng(7)
    xy = rng.uniform(-80, 80, (60, 2))
    z = -depth * np.exp(-(xy**2).sum(axis=1) / (2 * 45.0**2))
    return np.column_stack([xy + [320, 240], z])


def test_planar_motion_fits_one_homography_and_3d_motion_does_not() -> None:
    flat = _face_cloud(0.0)
    face = _face_cloud(60.0)
    for yaw in (10, 20, 30):
        planar = compare(_pinhole(flat, 0), _pinhole(flat, yaw))
        solid = compare(_pinhole(face, 0), _pinhole(face, yaw))
        assert planar.motion > 0.005  # the perspective does change the shape
        assert planar.residual < 1e-6
        assert solid.residual > 0.02
        assert solid.ratio > 0.4


def test_similarity_motion_is_zero_for_shift_turn_and_zoom() -> None:
    rng = np.random.default_rng(3)
    src = rng.uniform(0, 100, (20, 2))
    angle = math.radians(12)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    dst = 1.3 * src @ rot.T + [40, -10]
    assert similarity_residual(src, dst) < 1e-9


def test_depth_verdict() -> None:
    policy = DepthPolicy(min_motion=0.03, planar_ratio=0.4, min_pairs=2)
    assert verdict([], policy).score is None
    still = [MotionPair(0.01, 0.009)] * 5
    assert verdict(still, policy).pairs == 0
    planar = [MotionPair(0.08, 0.005), MotionPair(0.1, 0.01)]
    assert verdict(planar, policy).planar
    assert not verdict(planar[:1], policy).planar  # one pair is not enough to end early
    solid = [MotionPair(0.08, 0.05), MotionPair(0.12, 0.08)]
    result = verdict(solid, policy)
    assert not result.planar and result.score == pytest.approx(0.646, abs=0.01)


def test_iris_visibility_open_and_shut() -> None:
    iris = np.array([[50, 50], [44, 50], [50, 44], [56, 50], [50, 56]], float)
    contour = np.zeros((71, 2))
    xs = np.linspace(30, 70, 9)
    contour[0:9] = np.column_stack([xs, np.full(9, 55.0)])  # lower lid
    contour[9:16] = np.column_stack([np.linspace(35, 65, 7), np.full(7, 46.0)])  # upper lid
    assert geo.iris_visibility(contour, iris) == pytest.approx(9 / 12)
    contour[9:16, 1] = 54.5
    assert geo.iris_visibility(contour, iris) < 0.1
