"""1:1 verify and 1:N search. Each call analyses the probe off the event loop, queries
the index, and writes one row of verification history, the table analysts query."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from indexing.errors import NoFace
from indexing.face_choice import FaceSelector, in_box
from indexing.pipeline import AnalyzedFace
from indexing.timings import StageTimings
from indexing.types import BBox, RGBImage
from retrieval.ranking import search_subjects
from service.core.principal import Principal
from service.core.problems import NotFound, Unprocessable
from service.db.models import Gallery, Subject, Verification
from service.domain import history
from service.domain.components import Components, probe_image_key
from service.domain.galleries import get_visible


class NoTemplates(Unprocessable):
    slug, title = "no-templates", "Subject has no enrolled face"


@dataclass
class Liveness:
    decision: str
    score: float | None
    signals: dict[str, Any]


@dataclass
class VerifyOutcome:
    verification: Verification
    probe: AnalyzedFace | None
    reference: AnalyzedFace | None
    subject: Subject | None
    liveness: Liveness | None = None


@dataclass
class SearchOutcome:
    verification: Verification
    probe: AnalyzedFace
    candidates: list[dict[str, Any]] = field(default_factory=list)


def probe_face(
    components: Components, image: bytes, model_id: str, timings: StageTimings | None = None
) -> AnalyzedFace:
    """The probe's largest face, embedded with ``model_id``."""
    return probe_in(components, components.pipeline.decode(image, timings), model_id, timings).face


@dataclass
class Probe:
    """The face a verify or search used, and the boxes of the others it did not."""

    face: AnalyzedFace
    others: list[BBox] = field(default_factory=list)


def probe_in(
    components: Components,
    image: RGBImage,
    model_id: str,
    timings: StageTimings | None = None,
    selector: FaceSelector = FaceSelector(mode="largest"),
) -> Probe:
    """The probe's largest face (or the one in ``selector.box``), embedded with
    ``model_id``; the other faces are detected, not embedded."""
    found = components.pipeline.find_faces(image, timings=timings)
    if not found:
        raise NoFace()
    # Largest first, unless the caller named a box.
    chosen = found[0] if selector.box is None else in_box(found, selector.box)
    (face,) = components.pipeline.analyze_detections(
        image, [chosen], model_ids=[model_id], timings=timings
    )
    return Probe(face, [d.bbox for d in found if d is not chosen])


def probe_all(
    components: Components, image: RGBImage, model_id: str, timings: StageTimings | None = None
) -> list[AnalyzedFace]:
    """Every face of the probe, largest first, embedded (search ``face=all``)."""
    faces = components.pipeline.analyze_image(image, model_ids=[model_id], timings=timings)
    if not faces:
        raise NoFace()
    return faces


def _maybe_store_probe(
    components: Components, gallery: Gallery | None, row_id: uuid.UUID, image: bytes | None
) -> str | None:
    """Keep the probe image when the gallery asks for it; its key goes in the row."""
    if image is None or gallery is None or not gallery.store_probes:
        return None
    key = probe_image_key(gallery.id, row_id)
    components.image_store.put(key, image)
    return key


def resolve_verify_target(
    session: Session,
    principal: Principal,
    *,
    gallery_id: uuid.UUID | None,
    subject_id: uuid.UUID | None,
    external_id: str | None,
) -> tuple[Gallery, Subject]:
    """The gallery and subject of a 1:1 verify, in one query (this is on the hot path).
    A gallery the caller may not see is reported exactly like a missing one."""
    if gallery_id is None:
        raise Unprocessable("give gallery with subject or external_id, or a reference_image")
    query = select(Gallery, Subject).join(Subject, Subject.gallery_id == Gallery.id)
    query = query.where(Gallery.id == gallery_id)
    if subject_id is not None:
        query = query.where(Subject.id == subject_id)
        missing = f"no subject {subject_id} in gallery {gallery_id}"
    elif external_id is not None:
        query = query.where(Subject.external_id == external_id)
        missing = f"no subject with external_id {external_id!r} in gallery {gallery_id}"
    else:
        raise Unprocessable("give subject (id) or external_id with gallery")
    if not principal.sees_gallery(gallery_id):
        raise NotFound(f"no gallery {gallery_id}")
    row = session.execute(query).first()
    if row is None:
        get_visible(session, principal, gallery_id)  # say which of the two is missing
        raise NotFound(missing)
    return row[0], row[1]


def verify_against_subject(
    session: Session,
    components: Components,
    *,
    principal: Principal,
    gallery: Gallery,
    subject: Subject,
    probe: AnalyzedFace | None,
    image: bytes | None,
    started: float,
    liveness: Liveness | None,
    probe_vector: list[float] | None = None,
) -> VerifyOutcome:
    """``probe`` is the analysed probe image; or, for a verify bound to a passed liveness
    session, ``probe_vector`` is that session's final-frame embedding and ``probe`` None."""
    model_id = gallery.active_model_id
    vector = probe.embeddings[model_id] if probe is not None else probe_vector
    assert vector is not None
    similarity = components.index.verify(
        session.connection(), vector, subject_id=subject.id, model_id=model_id
    )
    if similarity is None:
        raise NoTemplates(
            f"subject {subject.id} has no face enrolled for model {model_id}; enroll one first"
        )
    threshold = components.threshold(model_id)
    row_id = uuid.uuid4()
    row = history.record(
        session,
        kind="verify",
        principal=principal,
        row_id=row_id,
        probe_image_key=_maybe_store_probe(components, gallery, row_id, image),
        gallery_id=gallery.id,
        subject_id=subject.id,
        external_id=subject.external_id,
        model_id=model_id,
        similarity=float(similarity),
        threshold=threshold,
        match=bool(similarity >= threshold),
        probe_bbox=probe.bbox.as_dict() if probe else None,
        probe_quality=probe.quality.as_dict() if probe else None,
        started=started,
        **_liveness_fields(liveness),
    )
    return VerifyOutcome(row, probe, None, subject, liveness)


def verify_two_images(
    session: Session,
    components: Components,
    *,
    principal: Principal,
    probe: AnalyzedFace,
    reference: AnalyzedFace,
    model_id: str,
    started: float,
    liveness: Liveness | None,
) -> VerifyOutcome:
    similarity = float(np.dot(probe.embeddings[model_id], reference.embeddings[model_id]))
    similarity = max(-1.0, min(1.0, similarity))
    threshold = components.threshold(model_id)
    row = history.record(
        session,
        kind="verify",
        principal=principal,
        model_id=model_id,
        similarity=similarity,
        threshold=threshold,
        match=bool(similarity >= threshold),
        probe_bbox=probe.bbox.as_dict(),
        probe_quality=probe.quality.as_dict(),
        started=started,
        **_liveness_fields(liveness),
    )
    return VerifyOutcome(row, probe, reference, None, liveness)


def _liveness_fields(liveness: Liveness | None) -> dict[str, Any]:
    if liveness is None:
        return {}
    return {
        "liveness_decision": liveness.decision,
        "liveness_score": liveness.score,
        "liveness_signals": liveness.signals,
    }


def search(
    session: Session,
    components: Components,
    *,
    principal: Principal,
    gallery: Gallery,
    probe: AnalyzedFace,
    image: bytes,
    k: int,
    threshold: float | None,
    started: float,
) -> SearchOutcome:
    model_id = gallery.active_model_id
    cut = threshold if threshold is not None else components.threshold(model_id)
    hits = search_subjects(
        session.connection(),
        components.index,
        probe.embeddings[model_id],
        gallery_id=gallery.id,
        model_id=model_id,
        k=k,
        threshold=cut,
    )
    subjects = {
        s.id: s
        for s in session.scalars(
            select(Subject).where(Subject.id.in_([h.subject_id for h in hits]))
        ).all()
    }
    candidates = [
        {
            "subject_id": str(h.subject_id),
            "external_id": subjects[h.subject_id].external_id,
            "display_name": subjects[h.subject_id].display_name,
            "similarity": round(float(h.similarity), 6),
        }
        for h in hits
        if h.subject_id in subjects  # deleted between the index query and now
    ]
    best = candidates[0] if candidates else None
    row_id = uuid.uuid4()
    row = history.record(
        session,
        kind="search",
        principal=principal,
        row_id=row_id,
        probe_image_key=_maybe_store_probe(components, gallery, row_id, image),
        gallery_id=gallery.id,
        subject_id=uuid.UUID(best["subject_id"]) if best else None,
        external_id=best["external_id"] if best else None,
        model_id=model_id,
        similarity=best["similarity"] if best else None,
        threshold=cut,
        match=best is not None,
        candidates=candidates,
        probe_bbox=probe.bbox.as_dict(),
        probe_quality=probe.quality.as_dict(),
        started=started,
    )
    return SearchOutcome(row, probe, candidates)
