"""L2 normalisation shared by every embedder."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def l2_normalise(vectors: NDArray[np.floating]) -> NDArray[np.float32]:
    """Rows scaled to unit length; an all-zero row stays zero instead of becoming NaN."""
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return (v / np.maximum(norms, 1e-12)).astype(np.float32)
