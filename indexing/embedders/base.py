"""The embedder protocol: aligned face chips in, L2-normalised embeddings out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from indexing.types import ModelSpec


@runtime_checkable
class Embedder(Protocol):
    """A face recognition model. Implementations say *what* they compute; the runtime
    (dlib, onnxruntime) is an implementation detail of each module."""

    spec: ModelSpec
    # How the chip must be cut: "dlib-150" (dlib.get_face_chip, 150 px, padding 0.25)
    # or "arcface-112" (the ArcFace 5-point similarity template, 112 px).
    alignment: str

    def embed(self, chips: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
        """RGB uint8 chips of the size ``alignment`` names → (n, dim) float32, each row
        L2-normalised. An empty sequence gives an array of shape (0, dim)."""
        ...
