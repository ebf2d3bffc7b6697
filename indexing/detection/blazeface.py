"""MediaPipe BlazeFace (full- and short-range) run with ai-edge-litert.

The model files are vendored under ``models/`` (see PROVENANCE.md). Decoding
follows MediaPipe's SSD anchor scheme and weighted non-maximum suppression.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
from ai_edge_litert.interpreter import Interpreter
from numpy.typing import NDArray

from indexing.call_threads import call_threads
from indexing.detection.base import Detection
from indexing.detection.dlib_hog import DlibHogDetector
from indexing.detection.refine import hog_box_near
from indexing.types import BBox, RGBImage

# BlazeFace's square box is larger than a dlib HOG box around the same face; this
# factor (about the centre) maps it to dlib's convention, as measured on the shared
# photos (median ratio of matched box widths 0.92, 22 faces).
DLIB_BOX_SCALE = 0.92
# Keypoint order of both models: right eye, left eye (the subject's), nose tip,
# mouth centre, right ear tragion, left ear tragion.
KP_RIGHT_EYE, KP_LEFT_EYE, KP_MOUTH = 0, 1, 3
NMS_IOU = 0.3
RAW_SCORE_LIMIT = 80.0


@dataclass(frozen=True)
class _Variant:
    file: str
    size: int
    strides: tuple[int, ...]
    anchors_per_cell: tuple[int, ...]


FULL_RANGE = _Variant("face_detection_full_range.tflite", 192, (4,), (1,))
SHORT_RANGE = _Variant("face_detection_short_range.tflite", 128, (8, 16), (2, 6))


def _anchors(v: _Variant) -> NDArray[np.float32]:
    out: list[tuple[float, float]] = []
    for stride, repeats in zip(v.strides, v.anchors_per_cell, strict=True):
        cells = v.size // stride
        for y in range(cells):
            for x in range(cells):
                out += [((x + 0.5) / cells, (y + 0.5) / cells)] * repeats
    return np.asarray(out, dtype=np.float32)


def model_path(v: _Variant) -> Path:
    return Path(str(resources.files("indexing.detection") / "models" / v.file))


def _iou(box: NDArray[np.float32], boxes: NDArray[np.float32]) -> NDArray[np.float32]:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def _weighted_nms(
    boxes: NDArray[np.float32], kps: NDArray[np.float32], scores: NDArray[np.float32]
) -> list[tuple[NDArray[np.float32], NDArray[np.float32], float]]:
    """MediaPipe's blending NMS: overlapping candidates are averaged by score, which
    steadies the box and keypoints compared with keeping only the best one."""
    order = np.argsort(-scores)
    boxes, kps, scores = boxes[order], kps[order], scores[order]
    kept = []
    remaining = np.arange(len(scores))
    while remaining.size:
        overlap = _iou(boxes[remaining[0]], boxes[remaining])
        group = remaining[overlap > NMS_IOU]
        w = scores[group][:, None]
        kept.append(
            (
                (boxes[group] * w).sum(0) / w.sum(),
                (kps[group] * w[:, :, None]).sum(0) / w.sum(),
                float(scores[remaining[0]]),
            )
        )
        remaining = remaining[overlap <= NMS_IOU]
    return kept


_first_interpreter = threading.Lock()
_announced = False


@contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """TFLite's C++ runtime prints "INFO: Created TensorFlow Lite XNNPACK delegate for
    CPU." straight to file descriptor 2 when a process makes its first interpreter (into
    a progress bar, between JSON log lines); no setting or variable turns it off. So the
    first interpreter is made with descriptor 2 on /dev/null for that moment."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _new_interpreter(path: str, threads: int) -> Interpreter:
    global _announced
    if _announced:
        return Interpreter(model_path=path, num_threads=threads)
    with _first_interpreter:
        if _announced:
            return Interpreter(model_path=path, num_threads=threads)
        with _native_stderr_silenced():
            interp = Interpreter(model_path=path, num_threads=threads)
            interp.allocate_tensors()
        _announced = True
        return interp


class BlazeFaceModel:
    """One BlazeFace variant. A TFLite interpreter holds its tensors and cannot be
    shared between threads, so each thread gets its own."""

    def __init__(self, variant: _Variant, *, score_threshold: float = 0.5) -> None:
        self.variant = variant
        self.score_threshold = score_threshold
        self._path = str(model_path(variant))
        self._anchors = _anchors(variant)
        self._local = threading.local()
        # The process's first interpreter now, while it is built (before threads and
        # progress bars), rather than in the middle of the first request.
        self._interpreter()

    def _interpreter(self) -> tuple[Interpreter, int, int, int]:
        """This thread's interpreter for the threads the current call may use."""
        threads = call_threads()
        states = getattr(self._local, "states", None)
        if states is None:
            states = self._local.states = {}
        state = states.get(threads)
        if state is None:
            interp = _new_interpreter(self._path, threads)
            interp.allocate_tensors()
            inp = interp.get_input_details()[0]["index"]
            outs = sorted(interp.get_output_details(), key=lambda o: int(o["shape"][-1]))
            state = (interp, inp, outs[1]["index"], outs[0]["index"])  # (regressors, scores)
            states[threads] = state
        return state

    def _letterbox(self, image: RGBImage) -> tuple[NDArray[np.float32], float, float, float]:
        h, w = image.shape[:2]
        side = max(h, w)
        scale = self.variant.size / side
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        resized = _shrink(image, nw, nh)
        tensor = np.full((1, self.variant.size, self.variant.size, 3), -1.0, dtype=np.float32)
        ox, oy = (self.variant.size - nw) // 2, (self.variant.size - nh) // 2
        np.multiply(resized, 1 / 127.5, out=tensor[0, oy : oy + nh, ox : ox + nw], casting="unsafe")
        tensor[0, oy : oy + nh, ox : ox + nw] -= 1.0
        return tensor, scale, float(ox), float(oy)

    def run(self, image: RGBImage) -> list[Detection]:
        tensor, scale, ox, oy = self._letterbox(image)
        interp, inp, reg_idx, score_idx = self._interpreter()
        interp.set_tensor(inp, tensor)
        interp.invoke()
        raw = interp.get_tensor(reg_idx)[0]
        logits = np.clip(interp.get_tensor(score_idx)[0, :, 0], -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT)
        scores = 1.0 / (1.0 + np.exp(-logits))
        keep = scores > self.score_threshold
        if not keep.any():
            return []
        raw, scores, anchors = raw[keep], scores[keep], self._anchors[keep]
        size = float(self.variant.size)
        centre = raw[:, 0:2] / size + anchors
        half = raw[:, 2:4] / size / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        kps = raw[:, 4:16].reshape(-1, 6, 2) / size + anchors[:, None, :]
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        out = []
        for box, kp, score in _weighted_nms(boxes[valid], kps[valid], scores[valid]):
            # Normalised letterbox coordinates → image pixels.
            px = (box * size - [ox, oy, ox, oy]) / scale
            kp_px = ((kp * size - [ox, oy]) / scale).astype(np.float32)
            out.append(_to_detection(px, kp_px, score))
        return out


def _shrink(image: RGBImage, width: int, height: int) -> NDArray[np.uint8]:
    """Area-filtered resize. OpenCV's area filter is several times faster for whole
    factors than for fractional ones, so the image is first halved as often as it can
    be, then resized the rest of the way."""
    h, w = image.shape[:2]
    while w >= 2 * width and h >= 2 * height:
        w, h = w // 2, h // 2
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    if (w, h) == (width, height):
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def _to_detection(box: NDArray[np.float32], kps: NDArray[np.float32], score: float) -> Detection:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half = (box[2] - box[0]) * DLIB_BOX_SCALE / 2
    # Roll: angle of the line from the subject's right eye (left in the image) to
    # the left eye; 0 for an upright face.
    eyes = kps[KP_LEFT_EYE] - kps[KP_RIGHT_EYE]
    roll = float(np.degrees(np.arctan2(eyes[1], eyes[0])))
    return Detection(
        bbox=BBox(float(cx - half), float(cy - half), float(cx + half), float(cy + half)),
        score=float(score),
        keypoints=kps,
        roll=roll,
        mouth=kps[KP_MOUTH],
    )


def _overlap_of_smaller(a: BBox, b: BBox) -> float:
    iw = min(a.right, b.right) - max(a.left, b.left)
    ih = min(a.bottom, b.bottom) - max(a.top, b.top)
    if iw <= 0 or ih <= 0:
        return 0.0
    return iw * ih / min(a.width * a.height, b.width * b.height)


def _tiles(h: int, w: int, fraction: float) -> list[tuple[int, int, int, int]]:
    """2×2 overlapping tiles (top, left, bottom, right), each ``fraction`` of a side."""
    th, tw = round(h * fraction), round(w * fraction)
    return [(t, x, t + th, x + tw) for t in (0, h - th) for x in (0, w - tw)]


class BlazeFaceDetector:
    """Full-range BlazeFace over the whole image, then:

    - on large images, again over 2×2 overlapping tiles: BlazeFace needs a face of
      at least ~6% of the long side, which misses small faces in group photos;
    - short range as the fallback when nothing is found, because full range misses
      faces wider than about 45% of the frame.
    """

    def __init__(
        self,
        *,
        score_threshold: float = 0.5,
        fallback: bool = True,
        tile_min_side: int | None = 1000,
        tile_fraction: float = 0.6,
    ) -> None:
        self.name = "blazeface"
        self.full = BlazeFaceModel(FULL_RANGE, score_threshold=score_threshold)
        self.short = BlazeFaceModel(SHORT_RANGE, score_threshold=score_threshold)
        self.fallback = fallback
        self.tile_min_side = tile_min_side
        self.tile_fraction = tile_fraction
        self._verifier = DlibHogDetector(adjust_threshold=-0.5)

    def _work_image(self, image: RGBImage) -> tuple[RGBImage, float]:
        """The image shrunk once (area filter, the slow part) to a side where every
        tile still fills the model input twice over; the full pass and the tiles are
        both cut from it."""
        work_side = 2 * FULL_RANGE.size / self.tile_fraction
        scale = min(1.0, work_side / max(image.shape[:2]))
        if scale == 1.0:
            return image, 1.0
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale

    def _tiled(self, image: RGBImage) -> list[Detection]:
        work, scale = self._work_image(image)
        found = [_moved(d, 0, 0, 1.0 / scale) for d in self.full.run(work)]
        h, w = work.shape[:2]
        for top, left, bottom, right in _tiles(h, w, self.tile_fraction):
            for d in self.full.run(work[top:bottom, left:right]):
                moved = _moved(d, left, top, 1.0 / scale)
                # A face seen whole in the full image, or in an earlier tile, is kept once.
                if all(_overlap_of_smaller(moved.bbox, k.bbox) < 0.5 for k in found):
                    if self._confirmed(image, moved.bbox):
                        found.append(moved)
        return found

    def _confirmed(self, image: RGBImage, box: BBox) -> bool:
        """Tiles see more candidates, and more impostors (hands, patterns): a face
        found only in a tile must also be found by dlib's HOG detector in a crop
        around it, resized so the face is ~120 px (bounded cost: ~5 ms)."""
        return hog_box_near(self._verifier, image, box, face_px=120.0, margin=1.2) is not None

    def detect(self, image: RGBImage) -> list[Detection]:
        if self.tile_min_side is not None and max(image.shape[:2]) >= self.tile_min_side:
            found = self._tiled(image)
        else:
            found = self.full.run(image)
        if not found and self.fallback:
            found = self.short.run(image)
        return found


def _moved(d: Detection, dx: float, dy: float, scale: float) -> Detection:
    """A detection in a tile (offset dx, dy) of an image shrunk by 1/scale, in the
    original image's pixels."""
    b = d.bbox
    kps = None if d.keypoints is None else (d.keypoints + np.float32([dx, dy])) * scale
    return Detection(
        bbox=BBox(
            (b.left + dx) * scale,
            (b.top + dy) * scale,
            (b.right + dx) * scale,
            (b.bottom + dy) * scale,
        ),
        score=d.score,
        keypoints=kps,
        roll=d.roll,
        mouth=None if kps is None else kps[KP_MOUTH],
    )
