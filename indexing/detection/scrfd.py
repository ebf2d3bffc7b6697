"""SCRFD (InsightFace) from an operator-supplied pack, run by onnxruntime.

The detection graph is the ``.onnx`` in ``FACEPRINT_MODEL_DIR`` whose outputs are
SCRFD's: per stride (8, 16, 32) a score (n, 1), a box distance (n, 4) and, for the
packs we use, five keypoints (n, 10); two anchors per cell. Decoding follows
InsightFace's ``model_zoo/scrfd.py``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from numpy.typing import NDArray

from indexing.detection.base import Detection
from indexing.errors import ModelUnavailable
from indexing.graph_runtimes import onnx_providers
from indexing.types import BBox, RGBImage

STRIDES = (8, 16, 32)
ANCHORS_PER_CELL = 2
# An SCRFD box runs from hairline to chin; dlib's is a square on the features. The
# landmark refit (indexing.landmarks) corrects the rest, so a square of the box's
# mean side about its centre is close enough to start from.
DLIB_BOX_SCALE = 0.9


def _output_kinds(model: onnx.ModelProto) -> list[int]:
    return [o.type.tensor_type.shape.dim[-1].dim_value for o in model.graph.output]


def find_scrfd_model(model_dir: Path) -> Path:
    """The pack's detection graph: 9 outputs, last dimensions 1, 4 and 10."""
    for path in sorted(model_dir.rglob("*.onnx")):
        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception:  # noqa: BLE001 - an unreadable file is simply not a candidate
            continue
        if len(model.graph.output) == 9 and sorted(set(_output_kinds(model))) == [1, 4, 10]:
            return path
    raise ModelUnavailable("scrfd", f"no SCRFD detection .onnx (9 outputs) in {model_dir}")


def _area(b: NDArray[np.float32]) -> NDArray[np.float32]:
    return (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])


def _nms(boxes: NDArray[np.float32], scores: NDArray[np.float32], iou: float) -> list[int]:
    order = list(np.argsort(-scores))
    keep = []
    while order:
        i = order.pop(0)
        keep.append(int(i))
        if not order:
            break
        rest = boxes[order]
        x0 = np.maximum(boxes[i, 0], rest[:, 0])
        y0 = np.maximum(boxes[i, 1], rest[:, 1])
        x1 = np.minimum(boxes[i, 2], rest[:, 2])
        y1 = np.minimum(boxes[i, 3], rest[:, 3])
        inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        overlap = inter / np.maximum(_area(boxes[i]) + _area(rest) - inter, 1e-9)
        order = [j for j, o in zip(order, overlap, strict=True) if o <= iou]
    return keep


def decode_scrfd(
    outputs: list[NDArray[np.float32]], size: int, score_threshold: float
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
    """Raw outputs (any order) → boxes (n, 4), scores (n,), keypoints (n, 5, 2) in
    input-tensor pixels, before NMS."""
    outs = [o.reshape(-1, o.shape[-1]) for o in outputs]
    by_kind = {
        k: sorted([o for o in outs if o.shape[1] == k], key=len, reverse=True) for k in (1, 4, 10)
    }
    boxes, scores, kps = [], [], []
    for i, stride in enumerate(STRIDES):
        cells = size // stride
        yy, xx = np.mgrid[:cells, :cells]
        centres = np.stack([xx, yy], axis=-1).reshape(-1, 2).astype(np.float32) * stride
        centres = np.repeat(centres, ANCHORS_PER_CELL, axis=0)
        s = by_kind[1][i][:, 0]
        keep = s >= score_threshold
        d = by_kind[4][i][keep] * stride
        c = centres[keep]
        boxes.append(np.concatenate([c - d[:, :2], c + d[:, 2:]], axis=1))
        kps.append(c[:, None, :] + by_kind[10][i][keep].reshape(-1, 5, 2) * stride)
        scores.append(s[keep])
    return np.concatenate(boxes), np.concatenate(scores), np.concatenate(kps)


class ScrfdDetector:
    """SCRFD at a fixed square input (640 by default). ``InferenceSession.run`` is
    thread-safe; the session is built once."""

    def __init__(
        self,
        model_path: Path,
        *,
        score_threshold: float = 0.5,
        nms_iou: float = 0.4,
        input_size: int = 640,
        intra_op_threads: int = 1,
    ) -> None:
        self.name = "scrfd"
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.size = input_size
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        self._session = ort.InferenceSession(
            str(model_path), sess_options=options, providers=onnx_providers()
        )
        self._input = self._session.get_inputs()[0].name

    def detect(self, image: RGBImage) -> list[Detection]:
        h, w = image.shape[:2]
        scale = self.size / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        canvas = np.zeros((self.size, self.size, 3), dtype=np.float32)
        canvas[:nh, :nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
        blob = ((canvas - 127.5) / 128.0).transpose(2, 0, 1)[None]
        outputs = self._session.run(None, {self._input: np.ascontiguousarray(blob)})
        boxes, scores, kps = decode_scrfd(outputs, self.size, self.score_threshold)
        found = []
        for i in _nms(boxes, scores, self.nms_iou):
            found.append(_to_detection(boxes[i] / scale, kps[i] / scale, float(scores[i])))
        return found


def _to_detection(box: NDArray[np.float32], kps: NDArray[np.float32], score: float) -> Detection:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half = (box[2] - box[0] + box[3] - box[1]) / 4 * DLIB_BOX_SCALE
    eyes = kps[1] - kps[0]  # image-left eye → image-right eye
    return Detection(
        bbox=BBox(float(cx - half), float(cy - half), float(cx + half), float(cy + half)),
        score=score,
        keypoints=kps.astype(np.float32),
        roll=float(np.degrees(np.arctan2(eyes[1], eyes[0]))),
        mouth=((kps[3] + kps[4]) / 2).astype(np.float32),
        five_points=kps.astype(np.float32),
    )
