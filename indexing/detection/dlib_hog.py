"""dlib's HOG + linear SVM frontal face detector (``dlib-bin``)."""

from __future__ import annotations

import threading

import dlib

from indexing.detection.base import Detection
from indexing.types import BBox, RGBImage


class DlibHogDetector:
    """Slow (≈ 55 ms per megapixel here, ×4 per upsampling) but finds small faces.
    ``upsample`` doubles the image that many times first (dlib's reference uses 1)."""

    def __init__(self, *, upsample: int = 0, adjust_threshold: float = 0.0) -> None:
        self.name = "dlib-hog" if upsample == 0 else f"dlib-hog-up{upsample}"
        self.upsample = upsample
        self.adjust_threshold = adjust_threshold
        self._local = threading.local()

    def _detector(self) -> dlib.fhog_object_detector:
        det = getattr(self._local, "det", None)
        if det is None:
            det = dlib.get_frontal_face_detector()
            self._local.det = det
        return det

    def detect(self, image: RGBImage) -> list[Detection]:
        rects, scores, _ = self._detector().run(image, self.upsample, self.adjust_threshold)
        # dlib rectangles include their last pixel; BBox right/bottom are exclusive.
        return [
            Detection(
                bbox=BBox(float(r.left()), float(r.top()), r.right() + 1.0, r.bottom() + 1.0),
                score=float(s),
                dlib_box=True,
            )
            for r, s in zip(rects, scores, strict=True)
        ]
