"""An enrolled face's stored photo, decrypted for a caller who may see it: the original,
or a small JPEG crop around the face for lists of thumbnails."""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass

from PIL import Image
from sqlalchemy.orm import Session

from indexing.image_store import ImageNotFound
from service.core.principal import Principal
from service.core.problems import NotFound
from service.domain.audit import record
from service.domain.components import Components
from service.domain.faces import face_in_subject

# Thumbnails are at most this many pixels on their longer side: a 6x4 grid of them on a
# subject page costs about as much as one original.
THUMBNAIL_PX = 160
# Context around the detected box, as a share of its size: a bare box cuts off the
# chin and hair that an operator uses to recognise who it is.
_MARGIN = 0.35

_SIGNATURES = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF8", "image/gif"),
    (b"BM", "image/bmp"),
)


@dataclass(frozen=True)
class FaceImage:
    data: bytes
    media_type: str


def _media_type(data: bytes) -> str:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for signature, media_type in _SIGNATURES:
        if data.startswith(signature):
            return media_type
    # Never let a browser sniff a stored upload into something executable.
    return "application/octet-stream"


def _thumbnail(components: Components, data: bytes, bbox: dict[str, float] | None) -> bytes:
    # The pipeline's own decoder: EXIF orientation applied exactly as when the box was
    # found, so the crop lands on the face.
    image = Image.fromarray(components.pipeline.decode(data))
    if bbox:
        x, y, w, h = (float(bbox[k]) for k in ("x", "y", "width", "height"))
        side = max(w, h) * (1 + 2 * _MARGIN)
        cx, cy = x + w / 2, y + h / 2
        box = (
            int(max(0, cx - side / 2)),
            int(max(0, cy - side / 2)),
            int(min(image.width, cx + side / 2)),
            int(min(image.height, cy + side / 2)),
        )
        if box[2] > box[0] and box[3] > box[1]:
            image = image.crop(box)
    image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


def read(
    session: Session,
    components: Components,
    principal: Principal,
    gallery_id: uuid.UUID,
    subject_id: uuid.UUID,
    face_id: uuid.UUID,
    *,
    thumbnail: bool,
) -> FaceImage:
    """Runs in a worker thread (decrypting and resizing are CPU work). Each read is an
    audit entry: a face photo is biometric data, and who looked at it is asked for."""
    face = face_in_subject(session, principal, gallery_id, subject_id, face_id)
    try:
        data = components.image_store.get(face.image_key)
    except ImageNotFound as exc:
        raise NotFound(f"face {face_id} has no stored image") from exc
    record(
        session,
        actor=principal,
        action="face.image.read",
        target_type="face",
        target_id=str(face_id),
        details={
            "subject_id": str(subject_id),
            "variant": "thumbnail" if thumbnail else "original",
        },
    )
    if thumbnail:
        return FaceImage(_thumbnail(components, data, face.bbox), "image/jpeg")
    return FaceImage(data, _media_type(data))
