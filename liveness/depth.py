"""Depth from motion: does the face's landmark motion between two frames fit a plane?

For each frame we compare its parallax landmarks with the session's reference frame:

- ``motion``: how much of the change a similarity (shift, turn, zoom) does *not*
  explain — the part a head turn or a tilted picture adds, relative to face size;
- ``residual``: how much even the best homography does not explain.

A flat picture (print, phone, tablet) moves as a plane: a homography explains its
motion up to landmark noise, so ``residual / motion`` stays near 0. A real head turning
shows parallax — nose tip against eyes and cheeks — and the ratio stays well above it.
Pairs with too little ``motion`` say nothing either way and are not scored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from liveness.geometry import Points, planarity_residual


def similarity_residual(src: Points, dst: Points) -> float:
    """RMS residual of the best 2-D similarity src → dst over the RMS spread of dst."""
    a = np.asarray(src, np.float64)[:, :2]
    b = np.asarray(dst, np.float64)[:, :2]
    ca, cb = a.mean(axis=0), b.mean(axis=0)
    za = (a - ca) @ np.array([1.0, 1j])
    zb = (b - cb) @ np.array([1.0, 1j])
    denom = float(np.vdot(za, za).real)
    if denom <= 1e-12:
        return 0.0
    # Least-squares complex scale (rotation + zoom) of centred points.
    k = np.vdot(za, zb) / denom
    err = zb - k * za
    spread = math.sqrt(float(np.mean(np.abs(zb) ** 2)))
    return math.sqrt(float(np.mean(np.abs(err) ** 2))) / spread if spread > 1e-12 else 0.0


@dataclass(frozen=True)
class MotionPair:
    motion: float
    residual: float

    @property
    def ratio(self) -> float:
        return self.residual / self.motion if self.motion > 1e-12 else 0.0


def compare(src: Points, dst: Points) -> MotionPair:
    return MotionPair(similarity_residual(src, dst), planarity_residual(src, dst))


@dataclass(frozen=True)
class DepthPolicy:
    # Pairs whose non-similar motion is below this (fraction of face size) are not scored.
    min_motion: float = 0.03
    # Median residual/motion at or below this over the scored pairs means planar motion.
    planar_ratio: float = 0.4
    # Scored pairs needed before a verdict of "planar" may end a session early.
    min_pairs: int = 2


@dataclass(frozen=True)
class DepthVerdict:
    pairs: int  # frame pairs with enough motion to score
    score: float | None  # median residual/motion ratio; None without scored pairs
    planar: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "pairs": self.pairs,
            "score": None if self.score is None else round(self.score, 4),
            "planar": self.planar,
        }


def verdict(pairs: list[MotionPair], policy: DepthPolicy) -> DepthVerdict:
    scored = [p.ratio for p in pairs if p.motion >= policy.min_motion]
    if not scored:
        return DepthVerdict(0, None, False)
    score = float(np.median(scored))
    planar = len(scored) >= policy.min_pairs and score <= policy.planar_ratio
    return DepthVerdict(len(scored), score, planar)
