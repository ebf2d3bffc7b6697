"""Error rates with their counts and a 95% confidence interval.

A rate from 140 trials moves 0.7 points per error, so every rate this project
publishes (FNMR, FMR, failure to enrol, recall) carries ``k``, ``n`` and the Wilson
score interval, which stays inside [0, 1] and is honest at k = 0 (where the normal
approximation claims an interval of zero width).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (0, 1 when n is 0)."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Rate:
    k: int
    n: int

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.k, self.n)

    def as_dict(self) -> dict[str, float | int]:
        lo, hi = self.interval
        return {"k": self.k, "n": self.n, "rate": self.value, "ci95_low": lo, "ci95_high": hi}

    def __str__(self) -> str:
        lo, hi = self.interval
        digits = 2 if hi < 0.01 else 1
        return (
            f"{self.value:.{digits}%} ({self.k:,}/{self.n:,}; 95% CI "
            f"{lo:.{digits}%}–{hi:.{digits}%})"
        )


def fpir_independent(fmr: float, n: int) -> float:
    """1 - (1 - fmr)^n: the chance that any of ``n`` independent comparisons, each a
    false match with probability ``fmr``, matches (a search's false positive
    identification rate against a gallery of n strangers). Computed through log1p so
    it stays exact at fmr 1e-8 and n 1e6."""
    if n <= 0:
        return 0.0
    fmr = min(max(fmr, 0.0), 1.0 - 1e-16)
    return -math.expm1(n * math.log1p(-fmr))
