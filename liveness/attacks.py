"""Synthetic presentation attacks built from a bona fide photo, for benchmarks and
tests (not used in serving). They imitate the traces a recaptured print or screen
leaves; they are not recaptures, and a detector tuned on them proves only that it finds
these traces (see liveness/README.md).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from liveness.mesh import Image


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    return yy, xx


def simulated_print(image: Image, rng: np.random.Generator, *, border: bool = False) -> Image:
    """Halftone screen, reduced gamut (paper white, ink black, duller colours), paper
    texture and a little defocus from the camera that photographs the print."""
    img = image.astype(np.float64) / 255.0
    h, w = img.shape[:2]
    luma = img @ np.array([0.299, 0.587, 0.114])
    img = luma[..., None] + (img - luma[..., None]) * rng.uniform(0.45, 0.7)
    img = 0.07 + img * rng.uniform(0.78, 0.86)
    yy, xx = _grid(h, w)
    pitch, angle = rng.uniform(2.5, 4.5), math.radians(rng.uniform(15, 75))
    u = (xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / pitch
    v = (-xx * math.sin(angle) + yy * math.cos(angle)) * 2 * math.pi / pitch
    dots = 0.5 + 0.25 * (np.cos(u) + np.cos(v))
    img *= 1 - rng.uniform(0.12, 0.22) * dots[..., None]
    fibre = cv2.GaussianBlur(rng.normal(0, 1, (h, w)), (0, 0), 1.2)
    img += rng.uniform(0.015, 0.03) * fibre[..., None] / max(fibre.std(), 1e-9)
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 0.8))
    out = (img.clip(0, 1) * 255).astype(np.uint8)
    return _framed(out, rng, (235, 235, 228)) if border else out


def simulated_screen(image: Image, rng: np.random.Generator, *, border: bool = False) -> Image:
    """Display gamma and white point, RGB sub-pixel grid, moiré against the camera's
    sensor, and a glare blob from a light reflected in the glass."""
    img = image.astype(np.float64) / 255.0
    h, w = img.shape[:2]
    img = img ** rng.uniform(0.75, 0.9) * np.array([0.94, 0.98, 1.06])
    yy, xx = _grid(h, w)
    pitch = int(rng.integers(3, 5))
    stripes = np.stack([(xx % pitch) == k for k in range(3)], axis=-1).astype(np.float64)
    img *= 1 - rng.uniform(0.1, 0.2) * (1 - stripes)
    img *= (1 - rng.uniform(0.08, 0.15) * ((yy % pitch) == 0))[..., None]
    f1 = rng.uniform(0.05, 0.12)
    angle = rng.uniform(0, math.pi)
    phase = (xx * math.cos(angle) + yy * math.sin(angle)) * f1 * 2 * math.pi
    phase += 0.002 * ((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / max(w, h)
    img *= (1 + rng.uniform(0.05, 0.1) * np.cos(phase))[..., None]
    cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
    sigma = rng.uniform(0.06, 0.15) * max(h, w)
    blob = np.exp(-(((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2)))
    img = img + rng.uniform(0.5, 0.9) * blob[..., None]
    out = (img.clip(0, 1) * 255).astype(np.uint8)
    return _framed(out, rng, (12, 12, 14)) if border else out


def _framed(image: Image, rng: np.random.Generator, colour: tuple[int, int, int]) -> Image:
    """The attack shrunk inside a sheet or a bezel, over a plain wall: the frame cue."""
    h, w = image.shape[:2]
    wall = np.full_like(image, rng.integers(90, 170))
    inner = cv2.resize(image, (int(w * 0.7), int(h * 0.7)), interpolation=cv2.INTER_AREA)
    pad = max(4, int(0.03 * w))
    y0, x0 = (h - inner.shape[0]) // 2, (w - inner.shape[1]) // 2
    wall[y0 - pad : y0 + inner.shape[0] + pad, x0 - pad : x0 + inner.shape[1] + pad] = colour
    wall[y0 : y0 + inner.shape[0], x0 : x0 + inner.shape[1]] = inner
    return wall
