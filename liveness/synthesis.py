"""Frame synthesis from one still photo, for tests and benchmarks (not used in serving).

- :func:`render_pose` re-renders the face as a 3-D surface: the mesh's own depth
  rotated and re-projected, the photo warped triangle by triangle. Nose, eyes and
  cheeks move with parallax, as they do when a real head turns.
- :func:`planar_pose` moves the whole photo as a flat sheet: one homography, which is
  what a printed photo or a phone screen turned in front of a camera produces.
- :func:`camera_frame` cuts a 640×480 webcam-like frame around a photo's face.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from numpy.typing import NDArray

from liveness.mesh import Image

Floats = NDArray[np.float64]


def _rotation(yaw_deg: float, pitch_deg: float) -> Floats:
    # Image axes: x right, y down, z away from the camera. + yaw = the person's left
    # (their nose swings to image right), + pitch = looking up (their chin comes forward).
    y, p = math.radians(yaw_deg), math.radians(pitch_deg)
    ry = np.array([[math.cos(y), 0, -math.sin(y)], [0, 1, 0], [math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), math.sin(p)], [0, -math.sin(p), math.cos(p)]])
    return rx @ ry


def posed_points(
    mesh: Floats, yaw_deg: float, pitch_deg: float, scale: float = 1.0, focal: float = 0.0
) -> Floats:
    """The mesh rotated about its centre and projected back: (N, 3) in image pixels.
    ``focal`` > 0 uses a pinhole camera of that focal length (pixels), else orthographic."""
    centre = mesh.mean(axis=0)
    rotated = (mesh - centre) @ _rotation(yaw_deg, pitch_deg).T * scale
    out = rotated + centre
    if focal > 0:
        depth = focal + rotated[:, 2]
        out[:, 0] = centre[0] + rotated[:, 0] * focal / depth
        out[:, 1] = centre[1] + rotated[:, 1] * focal / depth
    return out


def _anchor_points(image: Image, mesh: Floats) -> Floats:
    """Static points: the image border and a ring well outside the face, so only the face
    region deforms."""
    h, w = image.shape[:2]
    border = [(x, y) for x in np.linspace(0, w - 1, 5) for y in (0, h - 1)]
    border += [(x, y) for y in np.linspace(0, h - 1, 5)[1:-1] for x in (0, w - 1)]
    centre = mesh[:, :2].mean(axis=0)
    radius = float(np.max(np.linalg.norm(mesh[:, :2] - centre, axis=1))) * 1.5
    ring = [
        (centre[0] + radius * math.cos(a), centre[1] + radius * math.sin(a))
        for a in np.linspace(0, 2 * math.pi, 16, endpoint=False)
    ]
    pts = np.array(border + ring, np.float64)
    pts[:, 0] = pts[:, 0].clip(0, w - 1)
    pts[:, 1] = pts[:, 1].clip(0, h - 1)
    return pts


def _triangles(points: Floats, width: int, height: int) -> list[tuple[int, int, int]]:
    subdiv = cv2.Subdiv2D((-1, -1, width + 2, height + 2))
    for x, y in points:
        subdiv.insert((float(x), float(y)))
    result = []
    for t in subdiv.getTriangleList():
        corners = np.asarray(t, np.float64).reshape(3, 2)
        # Subdiv2D hands back float32 copies; find each corner's index by nearest point.
        dist = np.linalg.norm(points[None, :, :] - corners[:, None, :], axis=2)
        idx = dist.argmin(axis=1)
        if dist[np.arange(3), idx].max() < 0.5 and len(set(idx.tolist())) == 3:
            result.append((int(idx[0]), int(idx[1]), int(idx[2])))
    return result


def render_pose(
    image: Image,
    mesh: Floats,
    yaw_deg: float,
    pitch_deg: float = 0.0,
    scale: float = 1.0,
    focal: float = 0.0,
) -> Image:
    """The photo with its face turned by (yaw, pitch) as a 3-D surface."""
    h, w = image.shape[:2]
    anchors = _anchor_points(image, mesh)
    src = np.vstack([mesh[:, :2], anchors])
    moved = posed_points(mesh, yaw_deg, pitch_deg, scale, focal)
    dst = np.vstack([moved[:, :2], anchors])
    depth = np.concatenate([moved[:, 2], np.full(len(anchors), np.inf)])
    tris = _triangles(src, w, h)
    # Painter's order: far triangles first, so the near side of a turned face covers them.
    tris.sort(key=lambda t: -float(np.nan_to_num(np.mean(depth[list(t)]), posinf=1e9)))
    out = image.copy()
    for tri in tris:
        _warp_triangle(image, out, src[list(tri)], dst[list(tri)])
    return out


def _warp_triangle(src_img: Image, dst_img: Image, s: Floats, d: Floats) -> None:
    h, w = dst_img.shape[:2]
    x0, y0 = np.floor(d.min(axis=0)).astype(int)
    x1, y1 = np.ceil(d.max(axis=0)).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return
    m = cv2.getAffineTransform(s.astype(np.float32), (d - np.array([x0, y0])).astype(np.float32))
    patch = cv2.warpAffine(
        src_img, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillConvexPoly(mask, np.round(d - np.array([x0, y0])).astype(np.int32), 1)
    region = dst_img[y0:y1, x0:x1]
    region[mask > 0] = patch[mask > 0]


def planar_pose(
    image: Image,
    centre: tuple[float, float],
    yaw_deg: float,
    pitch_deg: float = 0.0,
    scale: float = 1.0,
    focal: float | None = None,
) -> Image:
    """The whole photo turned as a flat sheet about ``centre`` and seen by a pinhole
    camera: one homography."""
    h, w = image.shape[:2]
    f = focal or float(max(w, h))
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    flat = np.hstack([corners - np.array(centre), np.zeros((4, 1))])
    rotated = flat @ _rotation(yaw_deg, pitch_deg).T * scale
    depth = f + rotated[:, 2]
    projected = rotated[:, :2] * (f / depth)[:, None] + np.array(centre)
    homography = cv2.getPerspectiveTransform(
        corners.astype(np.float32), projected.astype(np.float32)
    )
    return cv2.warpPerspective(image, homography, (w, h), borderMode=cv2.BORDER_REPLICATE)


def camera_frame(
    image: Image, box: tuple[float, float, float, float], size: tuple[int, int] = (640, 480)
) -> Image:
    """A ``size`` (width, height) frame cut from a photo with the face of ``box`` in the
    middle, about 1/2.6 of the frame high: how a webcam frames a person at a desk."""
    left, top, right, bottom = box
    cx, cy = (left + right) / 2, (top + bottom) / 2
    aspect = size[0] / size[1]
    h = min((bottom - top) * 2.6, image.shape[0])
    w = min(h * aspect, image.shape[1])
    h = w / aspect
    x0 = int(np.clip(cx - w / 2, 0, image.shape[1] - w))
    y0 = int(np.clip(cy - h / 2, 0, image.shape[0] - h))
    crop = image[y0 : y0 + int(h), x0 : x0 + int(w)]
    return cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
