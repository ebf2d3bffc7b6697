"""The reindex's embedding step on the face pipeline: each enrolled face, at the box and
landmarks stored with it, cut from its stored original and embedded with the new model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from indexing.detection.base import Detection
from indexing.errors import FaceError, NoFace
from indexing.pipeline import AnalyzedFace, FacePipeline
from indexing.types import BBox, Embedding
from service.domain.reindex.jobs import StoredFace


def _iou(a: BBox, b: BBox) -> float:
    w = max(0.0, min(a.right, b.right) - max(a.left, b.left))
    h = max(0.0, min(a.bottom, b.bottom) - max(a.top, b.top))
    inter = w * h
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0


def stored_bbox(value: dict[str, float] | None) -> BBox | None:
    if not value:
        return None
    x, y = float(value["x"]), float(value["y"])
    return BBox(x, y, x + float(value["width"]), y + float(value["height"]))


def pick_face(faces: Sequence[AnalyzedFace], bbox: BBox | None) -> AnalyzedFace:
    """The face that overlaps the enrolled box most (faces come largest first, so with no
    box the largest face is taken)."""
    if not faces:
        raise NoFace()
    if bbox is None:
        return faces[0]
    best = max(faces, key=lambda face: _iou(face.bbox, bbox))
    if _iou(best.bbox, bbox) < 0.3:
        raise NoFace("the enrolled face was not found again in the stored original")
    return best


def stored_detection(face: StoredFace) -> Detection | None:
    """The face as enrollment found it (box and five landmarks), or None when the row
    lacks them. The roll that straightens a tilted face before landmarking comes from
    the stored eyes, as at enrollment it came from the detector's."""
    bbox = stored_bbox(face.bbox)
    if bbox is None or not face.landmarks or len(face.landmarks) != 5:
        return None
    points = np.asarray(face.landmarks, dtype=np.float32)
    eye_line = points[1] - points[0]
    return Detection(
        bbox=bbox,
        score=1.0,
        roll=float(np.degrees(np.arctan2(eye_line[1], eye_line[0]))),
        mouth=points[3:5].mean(axis=0),
        five_points=points,
    )


@dataclass
class PipelineReembedder:
    """The reindex's embedding step on the face pipeline: the enrolled face, at the box
    and landmarks stored with it, is cut from the stored original and embedded with the
    new model; the detector runs again only for rows stored without them."""

    pipeline: FacePipeline

    def __call__(
        self, faces: Sequence[tuple[StoredFace, bytes]], model_id: str
    ) -> list[Embedding | Exception]:
        known = [stored_detection(face) for face, _ in faces]
        analyzed = self.pipeline.analyze_many(
            [data for _, data in faces],
            model_ids=[model_id],
            known_faces=[None if d is None else [d] for d in known],
        )
        out: list[Embedding | Exception] = []
        for (face, _), result, detection in zip(faces, analyzed, known, strict=True):
            if isinstance(result, Exception):
                out.append(result)
            elif detection is not None:
                out.append(result[0].embeddings[model_id])
            else:
                try:
                    out.append(pick_face(result, stored_bbox(face.bbox)).embeddings[model_id])
                except FaceError as exc:
                    out.append(exc)
        return out
