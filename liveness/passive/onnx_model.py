"""An operator-provided ONNX anti-spoofing classifier (a MiniFASNet export or any model
of the same signature), run with onnxruntime.

Signature: one input N×3×H×W float32, BGR in 0–255 (H and W read from the graph, 80×80
for MiniFASNet), the face box scaled by 2.7 around its centre; one output N×C scores
(logits or probabilities) with class 1 = live. Nothing is downloaded: the file is
``$FACEPRINT_MODEL_DIR/anti_spoofing.onnx``.
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from liveness.mesh import Image
from liveness.passive.crops import Box

MODEL_FILE = "anti_spoofing.onnx"
CROP_SCALE = 2.7


class OnnxAntiSpoof:
    def __init__(self, path: Path, intra_op_threads: int = 1) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        self.path = path
        self._session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        meta = self._session.get_inputs()[0]
        shape = meta.shape
        if len(shape) != 4 or shape[1] != 3:
            raise ValueError(f"{path}: expected an N×3×H×W input, got {shape}")
        self._input = meta.name
        self.height = int(shape[2]) if isinstance(shape[2], int) else 80
        self.width = int(shape[3]) if isinstance(shape[3], int) else 80
        self._lock = threading.Lock()

    def live_probability(self, image: Image, box: Box) -> float:
        left, top, right, bottom = box
        cx, cy = (left + right) / 2, (top + bottom) / 2
        side = max(right - left, bottom - top) * CROP_SCALE
        sx, sy = self.width / side, self.height / side
        warp = np.array([[sx, 0, self.width / 2 - sx * cx], [0, sy, self.height / 2 - sy * cy]])
        crop = cv2.warpAffine(image, warp, (self.width, self.height), borderMode=cv2.BORDER_REFLECT)
        tensor = crop[:, :, ::-1].transpose(2, 0, 1)[np.newaxis].astype(np.float32)
        with self._lock:
            (scores,) = self._session.run(None, {self._input: tensor})
        row = np.asarray(scores, np.float64).reshape(-1)
        if row.size < 2:
            raise ValueError(f"{self.path}: expected at least two class scores, got {row.size}")
        if not (np.all(row >= 0) and abs(row.sum() - 1.0) < 1e-3):
            row = np.exp(row - row.max())
            row /= row.sum()
        return float(row[1])


def load_operator_model(model_dir: Path | None, intra_op_threads: int = 1) -> OnnxAntiSpoof | None:
    if model_dir is None:
        return None
    path = Path(model_dir) / MODEL_FILE
    return OnnxAntiSpoof(path, intra_op_threads) if path.is_file() else None
