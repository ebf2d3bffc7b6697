"""Face geometry from mesh landmarks: eye and mouth ratios, head pose, scale, and the
planarity of landmark motion between two frames. Pure functions on arrays.

Meshes are (468, 3) float arrays in image pixels: x right, y down, z the model's
relative depth in the same units as x, smaller meaning closer to the camera.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from liveness import landmarks as lm

Points = NDArray[np.float64]


def _dist(a: Points, b: Points) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64)[:2] - np.asarray(b, np.float64)[:2]))


def eye_aspect_ratio(p: Points) -> float:
    """(|p2−p6| + |p3−p5|) / (2·|p1−p4|) for six eye points; ≈0.25–0.35 open, <0.15 shut."""
    width = _dist(p[0], p[3])
    if width <= 1e-9:
        return 0.0
    return (_dist(p[1], p[5]) + _dist(p[2], p[4])) / (2.0 * width)


def eye_aspect_ratios(mesh: Points) -> tuple[float, float]:
    """(right, left) eye aspect ratios of a face mesh."""
    return (
        eye_aspect_ratio(mesh[list(lm.RIGHT_EYE_EAR)]),
        eye_aspect_ratio(mesh[list(lm.LEFT_EYE_EAR)]),
    )


def mouth_aspect_ratio(mesh: Points) -> float:
    """Mean inner-lip opening over the inner mouth width; ≈0 closed, >0.5 wide open."""
    a, b = lm.MOUTH_CORNERS_INNER
    width = _dist(mesh[a], mesh[b])
    if width <= 1e-9:
        return 0.0
    gaps = [_dist(mesh[u], mesh[d]) for u, d in lm.MOUTH_VERTICAL_PAIRS]
    return float(np.mean(gaps)) / width


def eye_span(mesh: Points) -> float:
    """Distance between the outer eye corners, in pixels: the face's scale in the image."""
    return _dist(mesh[lm.RIGHT_EYE_OUTER], mesh[lm.LEFT_EYE_OUTER])


def smile_ratio(mesh: Points) -> float:
    """Outer mouth width over the eye span; a smile widens the mouth by 10–25 %."""
    span = eye_span(mesh)
    if span <= 1e-9:
        return 0.0
    a, b = lm.MOUTH_CORNERS_OUTER
    return _dist(mesh[a], mesh[b]) / span


def head_pose(mesh: Points) -> tuple[float, float]:
    """(yaw, pitch) in degrees from the mesh's 3-D cheek-to-cheek and forehead-to-chin axes.

    Yaw is positive when the person turns to their own left (the nose moves toward the
    right of an unmirrored image); pitch is positive when they look up.
    """
    right, left = mesh[lm.RIGHT_CHEEK], mesh[lm.LEFT_CHEEK]
    # Turning left pushes the left cheek away from the camera (z grows) and pulls the right
    # cheek toward it.
    yaw = math.degrees(math.atan2(left[2] - right[2], left[0] - right[0]))
    top, chin = mesh[lm.FOREHEAD], mesh[lm.CHIN]
    # Looking up brings the chin toward the camera and tips the forehead away.
    pitch = math.degrees(math.atan2(top[2] - chin[2], chin[1] - top[1]))
    return yaw, pitch


def fit_homography(src: Points, dst: Points) -> NDArray[np.float64]:
    """Least-squares homography src → dst by the normalised DLT (Hartley), no outlier
    rejection: a planar scene must fit *all* points, that is the test."""
    if len(src) < 4 or len(src) != len(dst):
        raise ValueError("a homography needs at least four point pairs")
    ts, tsrc = _normalise(src)
    td, tdst = _normalise(dst)
    x, y = tsrc[:, 0], tsrc[:, 1]
    u, v = tdst[:, 0], tdst[:, 1]
    # Rows [-x, -y, -1, 0, 0, 0, ux, uy, u] and [0, 0, 0, -x, -y, -1, vx, vy, v] per pair.
    rows = np.zeros((2 * len(x), 9))
    rows[0::2, 0], rows[0::2, 1], rows[0::2, 2] = -x, -y, -1.0
    rows[1::2, 3], rows[1::2, 4], rows[1::2, 5] = -x, -y, -1.0
    rows[0::2, 6], rows[0::2, 7], rows[0::2, 8] = u * x, u * y, u
    rows[1::2, 6], rows[1::2, 7], rows[1::2, 8] = v * x, v * y, v
    # Only V is needed: the thin SVD skips the (2N)² U that the full one would build.
    _, _, vt = np.linalg.svd(rows, full_matrices=False)
    h = vt[-1].reshape(3, 3)
    full = np.linalg.inv(td) @ h @ ts
    return full / full[2, 2] if abs(full[2, 2]) > 1e-12 else full


def _normalise(points: Points) -> tuple[NDArray[np.float64], Points]:
    pts = np.asarray(points, np.float64)[:, :2]
    centre = pts.mean(axis=0)
    spread = np.sqrt(((pts - centre) ** 2).sum(axis=1)).mean()
    scale = math.sqrt(2.0) / spread if spread > 1e-12 else 1.0
    t = np.array([[scale, 0, -scale * centre[0]], [0, scale, -scale * centre[1]], [0, 0, 1.0]])
    return t, (pts - centre) * scale


def apply_homography(h: NDArray[np.float64], points: Points) -> Points:
    pts = np.asarray(points, np.float64)[:, :2]
    homog = np.hstack([pts, np.ones((len(pts), 1))]) @ h.T
    return homog[:, :2] / homog[:, 2:3]


def planarity_residual(src: Points, dst: Points) -> float:
    """RMS distance between ``dst`` and the best homography image of ``src``, divided by
    the RMS spread of ``dst`` around its centre.

    A flat picture moved in front of a camera maps by one homography (residual ≈ the
    landmark noise, well under 1 %); a real face turning shows parallax between nose,
    eyes and cheeks that no homography explains (several %).
    """
    src_xy = np.asarray(src, np.float64)[:, :2]
    dst_xy = np.asarray(dst, np.float64)[:, :2]
    h = fit_homography(src_xy, dst_xy)
    err = apply_homography(h, src_xy) - dst_xy
    rms = math.sqrt(float((err**2).sum(axis=1).mean()))
    spread = math.sqrt(float(((dst_xy - dst_xy.mean(axis=0)) ** 2).sum(axis=1).mean()))
    return rms / spread if spread > 1e-12 else 0.0


def iris_visibility(eye_contour: Points, iris: Points) -> float:
    """How much of the iris the lids leave visible: the lid gap at the iris centre over
    the iris diameter, clipped to [0, 1]. Falls to ≈0 in a blink."""
    diameter = 0.5 * (
        _dist(iris[lm.IRIS_LEFT], iris[lm.IRIS_RIGHT])
        + _dist(iris[lm.IRIS_TOP], iris[lm.IRIS_BOTTOM])
    )
    if diameter <= 1e-9:
        return 0.0
    cx = float(iris[lm.IRIS_CENTER][0])
    upper = _lid_y_at(eye_contour[list(lm.EYE_CONTOUR_UPPER)], cx)
    lower = _lid_y_at(eye_contour[list(lm.EYE_CONTOUR_LOWER)], cx)
    return float(np.clip((lower - upper) / diameter, 0.0, 1.0))


def _lid_y_at(lid: Points, x: float) -> float:
    order = np.argsort(lid[:, 0])
    xs, ys = lid[order, 0], lid[order, 1]
    return float(np.interp(x, xs, ys))
