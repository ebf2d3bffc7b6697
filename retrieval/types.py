"""The value types every index module shares, kept apart from the ``VectorIndex``
protocol so that the SQL helpers (``retrieval.pg``) need not import the protocol."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Vector = NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Hit:
    """One template found by a search. ``similarity`` is cosine, in [-1, 1]."""

    template_id: uuid.UUID
    subject_id: uuid.UUID
    similarity: float
