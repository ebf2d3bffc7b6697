"""The passive signals. Each looks at one physical trace that a reproduced face leaves
and returns ``Signal(attack, raw)``: ``attack`` in [0, 1] is how strongly the trace is
present (0 = none), ``raw`` the measured numbers behind it.

- texture: uniform-LBP histogram of the face. Halftone dots, paper fibre and display
  sub-pixels add micro-texture that skin at camera resolution does not have: the share
  of non-uniform LBP codes rises.
- frequency: isolated peaks in the face's 2-D spectrum. Halftone screens, pixel grids
  and the moiré between a screen and a camera sensor are periodic; skin is not.
- colour: printing shrinks the colour gamut (low saturation spread); screens add glare,
  large near-white specular blobs with no colour.
- border: long straight edges around the face — the edge of a sheet, a phone or a
  monitor bezel.

The mappings from raw numbers to evidence are hand-set logistic ramps; their centres
were chosen on the synthetic attacks of ``benchmarks/liveness.py`` (see the README's
note on what that does and does not prove).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from liveness.mesh import Image
from liveness.passive.crops import Box, expand


@dataclass(frozen=True)
class Signal:
    attack: float
    raw: dict[str, float] = field(default_factory=dict)


def _ramp(value: float, centre: float, width: float) -> float:
    """Logistic from 0 to 1, 0.5 at ``centre``; ``width`` is the distance from 0.27 to 0.73."""
    return 1.0 / (1.0 + math.exp(-(value - centre) / max(width, 1e-9)))


# The 58 uniform 8-bit LBP codes (at most two 0/1 transitions around the circle).
_UNIFORM = np.array(
    [sum(((c >> i) & 1) != ((c >> ((i + 1) % 8)) & 1) for i in range(8)) <= 2 for c in range(256)]
)


def lbp_codes(gray: np.ndarray) -> np.ndarray:
    g = gray.astype(np.int16)
    centre = g[1:-1, 1:-1]
    codes = np.zeros_like(centre, dtype=np.uint8)
    offsets = [(-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1)]
    h, w = g.shape
    for bit, (dy, dx) in enumerate(offsets):
        neighbour = g[1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx]
        codes |= ((neighbour >= centre).astype(np.uint8) << bit).astype(np.uint8)
    return codes


def texture(face: Image) -> Signal:
    gray = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)
    codes = lbp_codes(gray)
    hist = np.bincount(codes.ravel(), minlength=256).astype(np.float64)
    hist /= hist.sum()
    non_uniform = float(hist[~_UNIFORM].sum())
    nz = hist[hist > 0]
    entropy = float(-(nz * np.log2(nz)).sum())
    attack = _ramp(non_uniform, 0.30, 0.05)
    return Signal(
        attack, {"non_uniform_lbp": round(non_uniform, 4), "lbp_entropy": round(entropy, 3)}
    )


@dataclass(frozen=True)
class _SpectrumLayout:
    """Everything about an n×n spectrum that does not depend on the image: the window,
    the frequency masks, and where each band pixel goes in a (ring × pixel) table, so
    that all the rings' medians come from one row-wise sort instead of a Python loop."""

    window: np.ndarray
    band: np.ndarray  # flat indices of the band's pixels
    slots: np.ndarray  # their flat positions in the (rings, widest ring) table
    table_shape: tuple[int, int]
    ring_index: np.ndarray  # row of each band pixel in the table
    counts: np.ndarray  # pixels per ring (row)
    high: np.ndarray  # flat indices with radius > 0.25
    low: np.ndarray  # flat indices with radius < 0.12


@lru_cache(maxsize=16)
def _layout(n: int) -> _SpectrumLayout:
    yy, xx = np.mgrid[0:n, 0:n]
    fy, fx = (yy - n // 2) / n, (xx - n // 2) / n
    radius = np.hypot(fx, fy)
    # Mid and high frequencies, away from the axes where every straight edge puts energy.
    band = (radius >= 0.12) & (radius <= 0.5) & (np.abs(fx) > 2 / n) & (np.abs(fy) > 2 / n)
    rings = np.round(radius * n).astype(int).ravel()
    flat = np.flatnonzero(band.ravel())
    _, ring_index, counts = np.unique(rings[flat], return_inverse=True, return_counts=True)
    # Column of each pixel within its ring's row: its rank among the ring's pixels.
    order = np.argsort(ring_index, kind="stable")
    column = np.empty_like(order)
    column[order] = np.arange(order.size) - np.repeat(np.cumsum(counts) - counts, counts)
    width = int(counts.max()) if counts.size else 0
    return _SpectrumLayout(
        window=np.outer(np.hanning(n), np.hanning(n)),
        band=flat,
        slots=ring_index * width + column,
        table_shape=(counts.size, width),
        ring_index=ring_index,
        counts=counts,
        high=np.flatnonzero(radius.ravel() > 0.25),
        low=np.flatnonzero(radius.ravel() < 0.12),
    )


def _ring_prominence_peak(spectrum: np.ndarray, layout: _SpectrumLayout) -> float:
    """max over the band of (value − median of its ring), the medians taken exactly as
    ``np.median`` does (mean of the two middle values for an even count)."""
    if layout.band.size == 0:
        return 0.0
    values = spectrum.ravel()[layout.band]
    # Rings are padded with +inf, which sorts after every real value.
    table = np.full(layout.table_shape, np.inf)
    table.ravel()[layout.slots] = values
    table.sort(axis=1)
    rows = np.arange(layout.counts.size)
    lower = table[rows, (layout.counts - 1) // 2]
    upper = table[rows, layout.counts // 2]
    medians = (lower + upper) / 2
    return float((values - medians[layout.ring_index]).max())


def frequency(patch: Image) -> Signal:
    gray = cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY).astype(np.float64)
    n = min(gray.shape[:2])
    gray = gray[:n, :n]
    gray -= gray.mean()
    layout = _layout(n)
    spectrum = np.log1p(np.abs(np.fft.fftshift(np.fft.fft2(gray * layout.window))))
    peak = _ring_prominence_peak(spectrum, layout)
    # A display's sub-pixel grid lies along the axes when the screen is held square to
    # the camera: look for peaks along each axis against the axis's own neighbourhood.
    centre = n // 2
    for line in (spectrum[centre, centre:], spectrum[centre:, centre]):
        peak = max(peak, _axis_peak(line, n))
    flat = spectrum.ravel()
    high = float(np.mean(flat[layout.high])) - float(np.mean(flat[layout.low]))
    attack = _ramp(peak, 2.4, 0.2)
    return Signal(attack, {"spectral_peak": round(peak, 3), "high_low_ratio": round(high, 3)})


def _axis_peak(line: np.ndarray, n: int) -> float:
    start = int(0.12 * n)
    if len(line) - start < 12:
        return 0.0
    profile = line[start:]
    pad = np.pad(profile, 4, mode="edge")
    local = np.median(sliding_window_view(pad, 9), axis=1)
    return float((profile - local).max())


def colour(face: Image) -> Signal:
    hsv = cv2.cvtColor(face, cv2.COLOR_RGB2HSV).astype(np.float64)
    sat, val = hsv[..., 1] / 255.0, hsv[..., 2] / 255.0
    sat_p5, sat_p95 = (float(v) for v in np.percentile(sat, [5, 95]))
    sat_spread = sat_p95 - sat_p5
    glare = float(np.mean((val > 0.96) & (sat < 0.12)))
    attack = max(_ramp(-sat_spread, -0.18, 0.03), _ramp(glare, 0.07, 0.01))
    return Signal(
        attack,
        {
            "saturation_p95": round(sat_p95, 4),
            "saturation_spread": round(sat_spread, 4),
            "specular_fraction": round(glare, 4),
        },
    )


def border(image: Image, box: Box) -> Signal:
    h, w = image.shape[:2]
    x0, y0, x1, y1 = expand(box, 3.0, w, h)
    region = cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY)
    face_w = box[2] - box[0]
    # Blank the face itself: only its surroundings can hold a sheet edge or a bezel.
    fx0, fy0, fx1, fy1 = expand(box, 1.3, w, h)
    edges = cv2.Canny(cv2.GaussianBlur(region, (5, 5), 0), 60, 150)
    edges[max(fy0 - y0, 0) : fy1 - y0, max(fx0 - x0, 0) : fx1 - x0] = 0
    lines = cv2.HoughLinesP(
        edges, 1, np.pi / 180, threshold=60, minLineLength=int(face_w * 0.9), maxLineGap=4
    )
    cx, cy = (box[0] + box[2]) / 2 - x0, (box[1] + box[3]) / 2 - y0
    total, sides = 0.0, set()
    for lx0, ly0, lx1, ly1 in [] if lines is None else lines.reshape(-1, 4):
        total += math.hypot(lx1 - lx0, ly1 - ly0)
        angle = abs(math.degrees(math.atan2(ly1 - ly0, lx1 - lx0))) % 180
        mx, my = (lx0 + lx1) / 2, (ly0 + ly1) / 2
        if angle < 20 or angle > 160:
            sides.add("top" if my < cy else "bottom")
        elif 70 < angle < 110:
            sides.add("left" if mx < cx else "right")
    length = total / max(face_w, 1.0)
    # A sheet or a screen encloses the face: edges on three or four sides are its
    # signature; one or two sides are as likely a door, a window or a flagpole.
    attack = min(1.0, len(sides) / 3) * _ramp(length, 3.0, 0.7)
    return Signal(attack, {"straight_edge_length": round(length, 3), "sides": float(len(sides))})
