"""Image bytes → faces with boxes, landmarks, quality and embeddings.

``build_pipeline(config)`` makes one ``FacePipeline`` (in the FastAPI lifespan, the
worker, or the benchmark); it is safe to call from several threads at once: every
runtime that is not thread-safe (TFLite, dlib) is held per thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import platformdirs
from numpy.typing import NDArray
from prometheus_client import CollectorRegistry

from indexing.align import DLIB_150, chip
from indexing.call_threads import CallGauge
from indexing.decode import decode_image
from indexing.detection.base import Detection, Detector, largest_first
from indexing.detection.factory import build_detector
from indexing.errors import ImageError
from indexing.landmarks import FaceShape, LandmarkPredictor
from indexing.quality import QualityThresholds, assess
from indexing.registry import EmbedderContext, ModelRegistry
from indexing.timings import PipelineMetrics, StageTimings
from indexing.types import BBox, GraphRuntimeName, Landmarks, ModelSpec, Quality, RGBImage


@dataclass
class PipelineConfig:
    detector: str = "blazeface"
    model_dir: Path | None = None
    # Writable, for model files built at run time (e.g. ONNX graphs made from dlib's
    # weights); the service passes a directory inside its data dir.
    cache_dir: Path = field(
        default_factory=lambda: Path(platformdirs.user_cache_dir("faceprint", appauthor=False))
    )
    intra_op_threads: int = 1
    # Threads a call that runs alone in this process may give the detector and the
    # ONNX embedder (indexing.call_threads); 1: always intra_op_threads.
    idle_threads: int = 1
    max_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000
    # Enrollment quality threshold: narrower faces are refused with a reason.
    min_face_px: int = 56
    detector_score_threshold: float = 0.5
    # Average each embedding with that of the mirrored chip, for twice the embedding
    # time. On lfw-dev it lowers FNMR at FMR 1e-3 from 2.9% to 2.1% and at 1e-4 from
    # 22.9% to 19.3%; off by default because it doubles the embedding's share of every
    # verify. The registry then reports the threshold calibrated with it.
    flip_average: bool = False
    # Calibration records (``faceprint models calibrate``) that replace the shipped
    # thresholds; None: the shipped thresholds only (benchmarks measure against them).
    calibration_dir: Path | None = None
    # Embedding batch size: chips are embedded in chunks of at most this many.
    batch_size: int = 32
    # What runs the ONNX embedder: auto, onnxruntime or openvino (indexing.graph_runtimes).
    graph_runtime: GraphRuntimeName = "auto"


@dataclass
class DetectedFace:
    bbox: BBox
    landmarks: Landmarks  # 5×2 float32, see indexing.landmarks for the order
    score: float
    quality: Quality
    # (width, height) of the photo the face was found in, for choosing among faces.
    frame: tuple[int, int] = (0, 0)


@dataclass
class AnalyzedFace(DetectedFace):
    # One L2-normalised vector per requested model id.
    embeddings: dict[str, NDArray[np.float32]] = field(default_factory=dict)


@dataclass
class _Face:
    detection: Detection
    shape: FaceShape
    dlib_chip: NDArray[np.uint8]
    quality: Quality
    frame: tuple[int, int]

    def public(self) -> DetectedFace:
        d = self.detection
        return DetectedFace(d.bbox, self.shape.landmarks, d.score, self.quality, self.frame)


class FacePipeline:
    def __init__(
        self,
        config: PipelineConfig,
        *,
        detector: Detector,
        landmarks: LandmarkPredictor,
        models: ModelRegistry,
        metrics: PipelineMetrics,
    ) -> None:
        self.config = config
        self.detector = detector
        self.landmarks = landmarks
        self.models = models
        self.metrics = metrics
        self.thresholds = QualityThresholds(min_face_px=config.min_face_px)
        self.gauge = CallGauge(max(1, config.idle_threads))

    def spec(self, model_id: str) -> ModelSpec:
        return self.models.spec(model_id)

    def decode(self, data: bytes, timings: StageTimings | None = None) -> RGBImage:
        with self.metrics.stage("decode", timings):
            return decode_image(
                data, max_bytes=self.config.max_bytes, max_pixels=self.config.max_pixels
            )

    def _faces(
        self,
        image: RGBImage,
        max_faces: int | None,
        timings: StageTimings | None,
        nearest_centre: bool = False,
    ) -> list[_Face]:
        found = self._detected(image, timings)
        if nearest_centre and found:
            found = [min(found, key=lambda d: _centre_distance(d.bbox, image))]
        if max_faces is not None:
            found = found[:max_faces]
        return self._shaped(image, found, timings)

    def _detected(self, image: RGBImage, timings: StageTimings | None) -> list[Detection]:
        with self.metrics.stage("detect", timings):
            return largest_first(self.detector.detect(image))

    def _shaped(
        self, image: RGBImage, found: Sequence[Detection], timings: StageTimings | None
    ) -> list[_Face]:
        with self.metrics.stage("landmarks_align", timings):
            shapes = [self.landmarks.predict(image, d) for d in found]
            chips = [chip(image, d.bbox, s, DLIB_150) for d, s in zip(found, shapes, strict=True)]
        frame = (image.shape[1], image.shape[0])
        with self.metrics.stage("quality", timings):
            qualities = [
                assess(d.bbox, s.landmarks, c, self.thresholds, frame)
                for d, s, c in zip(found, shapes, chips, strict=True)
            ]
        return [
            _Face(*parts, frame=frame)
            for parts in zip(found, shapes, chips, qualities, strict=True)
        ]

    def find_faces(
        self, image: RGBImage, *, timings: StageTimings | None = None
    ) -> list[Detection]:
        """The detector's boxes alone, largest first: for callers that need no landmarks,
        chips or quality (liveness frames). A pipeline call like the others, so it
        counts towards the calls in flight and the detect stage's metrics."""
        with self.gauge.call():
            return self._detected(image, timings)

    def detect_image(
        self, image: RGBImage, *, max_faces: int | None = None, timings: StageTimings | None = None
    ) -> list[DetectedFace]:
        """As :meth:`detect`, for an image already decoded."""
        with self.gauge.call():
            return [f.public() for f in self._faces(image, max_faces, timings)]

    def detect(
        self, data: bytes, *, max_faces: int | None = None, timings: StageTimings | None = None
    ) -> list[DetectedFace]:
        """Decode, detect, landmark and assess; faces sorted largest first."""
        return self.detect_image(self.decode(data, timings), max_faces=max_faces, timings=timings)

    def _embed(
        self,
        batch: list[tuple[RGBImage, _Face]],
        model_ids: Sequence[str],
        timings: StageTimings | None,
    ) -> list[dict[str, NDArray[np.float32]]]:
        out: list[dict[str, NDArray[np.float32]]] = [{} for _ in batch]
        for model_id in model_ids:
            embedder = self.models.embedder(model_id)
            alignment = self.models.entry(model_id).alignment
            with self.metrics.stage("landmarks_align", timings):
                chips = [
                    f.dlib_chip
                    if alignment == DLIB_150
                    else chip(img, f.detection.bbox, f.shape, alignment)
                    for img, f in batch
                ]
            with self.metrics.stage("embed", timings):
                step = max(1, self.config.batch_size)
                vectors = [embedder.embed(chips[i : i + step]) for i in range(0, len(chips), step)]
            flat = np.concatenate(vectors) if vectors else np.zeros((0, embedder.spec.dim))
            for row, vector in zip(out, flat, strict=True):
                row[model_id] = vector.astype(np.float32)
        return out

    def analyze_image(
        self,
        image: RGBImage,
        *,
        model_ids: Sequence[str],
        max_faces: int | None = None,
        timings: StageTimings | None = None,
        nearest_centre: bool = False,
    ) -> list[AnalyzedFace]:
        """As :meth:`analyze` for a decoded image. ``nearest_centre`` keeps only the face
        nearest the image centre (photos centred on one person, as in LFW)."""
        for model_id in model_ids:
            self.models.entry(model_id)  # unknown ids fail before any work
        with self.gauge.call():
            faces = self._faces(image, max_faces, timings, nearest_centre)
            return self._embedded(image, faces, model_ids, timings)

    def analyze_detections(
        self,
        image: RGBImage,
        detections: Sequence[Detection],
        *,
        model_ids: Sequence[str],
        timings: StageTimings | None = None,
    ) -> list[AnalyzedFace]:
        """As :meth:`analyze_image` for faces the detector has already found in
        ``image``: landmarks, quality and embeddings, without detecting again."""
        for model_id in model_ids:
            self.models.entry(model_id)
        with self.gauge.call():
            faces = self._shaped(image, detections, timings)
            return self._embedded(image, faces, model_ids, timings)

    def _embedded(
        self,
        image: RGBImage,
        faces: list[_Face],
        model_ids: Sequence[str],
        timings: StageTimings | None,
    ) -> list[AnalyzedFace]:
        vectors = self._embed([(image, f) for f in faces], model_ids, timings)
        return [_analyzed(f, v) for f, v in zip(faces, vectors, strict=True)]

    def analyze(
        self,
        data: bytes,
        *,
        model_ids: Sequence[str],
        max_faces: int | None = None,
        timings: StageTimings | None = None,
    ) -> list[AnalyzedFace]:
        """As :meth:`detect`, plus one embedding per face for each model id."""
        image = self.decode(data, timings)
        return self.analyze_image(image, model_ids=model_ids, max_faces=max_faces, timings=timings)

    def analyze_many(
        self,
        items: Sequence[bytes],
        *,
        model_ids: Sequence[str],
        max_faces: int | None = None,
        timings: StageTimings | None = None,
        known_faces: Sequence[Sequence[Detection] | None] | None = None,
    ) -> list[list[AnalyzedFace] | ImageError]:
        """Many images, with the embeddings of all their faces computed in batches.
        A bad image gives its ``ImageError`` in its slot instead of failing the batch.
        ``known_faces[i]``, when given and not None, are image i's faces as found
        before (a reindex re-embedding an enrolled face from its stored box): they are
        landmarked and embedded without running the detector again."""
        for model_id in model_ids:
            self.models.entry(model_id)
        if known_faces is not None and len(known_faces) != len(items):
            raise ValueError("known_faces needs one entry per item")
        per_item: list[tuple[RGBImage, list[_Face]] | ImageError] = []
        with self.gauge.call():
            for i, data in enumerate(items):
                try:
                    image = self.decode(data, timings)
                except ImageError as exc:
                    per_item.append(exc)
                    continue
                known = known_faces[i] if known_faces is not None else None
                if known is None:
                    per_item.append((image, self._faces(image, max_faces, timings)))
                else:
                    per_item.append((image, self._shaped(image, known, timings)))
            flat = [
                (img, f)
                for entry in per_item
                if not isinstance(entry, ImageError)
                for img, faces in [entry]
                for f in faces
            ]
            vectors = iter(self._embed(flat, model_ids, timings))
        results: list[list[AnalyzedFace] | ImageError] = []
        for entry in per_item:
            if isinstance(entry, ImageError):
                results.append(entry)
            else:
                results.append([_analyzed(f, next(vectors)) for f in entry[1]])
        return results


def _centre_distance(box: BBox, image: RGBImage) -> float:
    h, w = image.shape[:2]
    return float(np.hypot((box.left + box.right - w) / 2, (box.top + box.bottom - h) / 2))


def _analyzed(face: _Face, vectors: dict[str, NDArray[np.float32]]) -> AnalyzedFace:
    d = face.detection
    return AnalyzedFace(
        d.bbox, face.shape.landmarks, d.score, face.quality, face.frame, embeddings=vectors
    )


def embedder_context(config: PipelineConfig) -> EmbedderContext:
    """What the model registry of a pipeline with ``config`` sees (also for tools that
    need the registry's specs without a detector)."""
    return EmbedderContext(
        model_dir=config.model_dir,
        cache_dir=config.cache_dir,
        intra_op_threads=config.intra_op_threads,
        flip_average=config.flip_average,
        calibration_dir=config.calibration_dir,
        graph_runtime=config.graph_runtime,
        detector=config.detector,
    )


def build_pipeline(
    config: PipelineConfig, *, metrics_registry: CollectorRegistry | None = None
) -> FacePipeline:
    """Everything expensive is made here, once. Pass the service's Prometheus registry
    to export the stage histogram; without one a private registry is used."""
    return FacePipeline(
        config,
        detector=build_detector(
            config.detector,
            score_threshold=config.detector_score_threshold,
            model_dir=config.model_dir,
            intra_op_threads=config.intra_op_threads,
        ),
        landmarks=LandmarkPredictor(),
        models=ModelRegistry(embedder_context(config)),
        metrics=PipelineMetrics(metrics_registry or CollectorRegistry()),
    )
