"""The verify, search and detect use cases, run in a worker thread: lookups first (a 404
costs no CPU), then the face pipeline, then the index query and the history row,
committed before the answer goes out."""

from __future__ import annotations

import time
import uuid

from sqlalchemy.orm import Session

from indexing.errors import NoFace
from indexing.pipeline import AnalyzedFace, DetectedFace
from indexing.timings import StageTimings
from indexing.types import BBox, RGBImage
from service.core.principal import Principal
from service.core.problems import MissingImage, Unprocessable
from service.domain.components import Components
from service.domain.galleries import get_visible
from service.domain.liveness.passive import passive_check_face
from service.domain.liveness.runtime import LivenessRuntime
from service.domain.liveness.sessions import mark_used, session_probe
from service.domain.matching import decisions as matching
from service.domain.matching.params import SearchParams, VerifyParams, probe_selector
from service.domain.schemas import (
    BBoxOut,
    Candidate,
    DetectedFaceOut,
    DetectResponse,
    LivenessOut,
    SearchFaceResult,
    SearchResponse,
    VerifyResponse,
)


def face_out(face: DetectedFace) -> DetectedFaceOut:
    return DetectedFaceOut(
        bbox=BBoxOut(**face.bbox.as_dict()),
        landmarks=[[round(float(x), 1), round(float(y), 1)] for x, y in face.landmarks],
        score=round(float(face.score), 4),
        quality=face.quality.as_dict(),
    )


def _liveness(liveness: LivenessRuntime, image: RGBImage, face: AnalyzedFace) -> matching.Liveness:
    result = passive_check_face(liveness, image, face.bbox)
    return matching.Liveness(
        decision=result.decision, score=float(result.score), signals=dict(result.signals)
    )


def server_timing(timings: StageTimings, total_ms: float) -> str:
    """A ``Server-Timing`` header: where the time of a request went, per pipeline stage,
    and the rest (parsing, auth, index query, history write)."""
    parts = [f"{stage};dur={seconds * 1000:.2f}" for stage, seconds in timings.seconds.items()]
    pipeline_ms = sum(timings.seconds.values()) * 1000
    parts.append(f"pipeline;dur={pipeline_ms:.2f}")
    parts.append(f"service;dur={total_ms:.2f}")
    return ", ".join(parts)


def verify(
    session: Session,
    components: Components,
    liveness: LivenessRuntime,
    *,
    principal: Principal,
    params: VerifyParams,
    image: bytes | None,
    reference: bytes | None,
    timings: StageTimings | None = None,
) -> VerifyResponse:
    started = time.perf_counter()
    selector = probe_selector(params.face)
    others: list[BBox] = []
    if params.liveness_session is not None:
        outcome = _verify_liveness_session(
            session, components, liveness, principal=principal, params=params, image=image,
            reference=reference, started=started,
        )  # fmt: skip
    elif image is None:
        raise MissingImage("send the probe as multipart 'image' or JSON 'image_base64'")
    elif reference is not None:
        model_id = components.default_model
        if params.gallery is not None:
            model_id = get_visible(session, principal, params.gallery).active_model_id
        decoded = components.pipeline.decode(image, timings)
        chosen = matching.probe_in(components, decoded, model_id, timings, selector)
        probe, others = chosen.face, chosen.others
        ref = matching.probe_face(components, reference, model_id, timings)
        live = _liveness(liveness, decoded, probe) if params.liveness else None
        outcome = matching.verify_two_images(
            session, components, principal=principal, probe=probe, reference=ref,
            model_id=model_id, started=started, liveness=live,
        )  # fmt: skip
    else:
        gallery, subject = matching.resolve_verify_target(
            session, principal, gallery_id=params.gallery, subject_id=params.subject,
            external_id=params.external_id,
        )  # fmt: skip
        decoded = components.pipeline.decode(image, timings)
        chosen = matching.probe_in(components, decoded, gallery.active_model_id, timings, selector)
        probe, others = chosen.face, chosen.others
        live = _liveness(liveness, decoded, probe) if params.liveness else None
        outcome = matching.verify_against_subject(
            session, components, principal=principal, gallery=gallery, subject=subject,
            probe=probe, image=image, started=started, liveness=live,
        )  # fmt: skip
    session.commit()
    row = outcome.verification
    return VerifyResponse(
        verification_id=row.id,
        match=bool(row.match),
        similarity=round(float(row.similarity or 0.0), 6),
        threshold=float(row.threshold or 0.0),
        model_id=str(row.model_id),
        subject_id=row.subject_id,
        external_id=row.external_id,
        probe=face_out(outcome.probe) if outcome.probe else None,
        reference=face_out(outcome.reference) if outcome.reference else None,
        liveness=LivenessOut(**vars(outcome.liveness)) if outcome.liveness else None,
        latency_ms=float(row.latency_ms or 0.0),
        other_faces=[BBoxOut(**b.as_dict()) for b in others],
    )


def _verify_liveness_session(
    session: Session,
    components: Components,
    liveness: LivenessRuntime,
    *,
    principal: Principal,
    params: VerifyParams,
    image: bytes | None,
    reference: bytes | None,
    started: float,
) -> matching.VerifyOutcome:
    """Verify the face that proved liveness: the passed session's final frame."""

    if image is not None or reference is not None:
        raise Unprocessable("with liveness_session, send no image: the session's face is used")
    assert params.liveness_session is not None
    gallery, subject = matching.resolve_verify_target(
        session, principal, gallery_id=params.gallery, subject_id=params.subject,
        external_id=params.external_id,
    )  # fmt: skip
    passed = session_probe(liveness, session, principal, params.liveness_session)
    if passed.model_id != gallery.active_model_id:
        raise Unprocessable(
            f"the session's face was embedded with {passed.model_id}, the gallery uses "
            f"{gallery.active_model_id}"
        )
    # The session's own score (the depth-from-motion verdict its history row holds).
    live = matching.Liveness(decision="live", score=passed.score, signals=passed.signals)
    outcome = matching.verify_against_subject(
        session, components, principal=principal, gallery=gallery, subject=subject,
        probe=None, image=None, started=started, liveness=live, probe_vector=passed.embedding,
    )  # fmt: skip
    mark_used(passed, outcome.verification.id)
    return outcome


def search(
    session: Session,
    components: Components,
    *,
    principal: Principal,
    gallery_id: uuid.UUID,
    params: SearchParams,
    image: bytes,
    timings: StageTimings | None = None,
) -> SearchResponse:
    started = time.perf_counter()
    gallery = get_visible(session, principal, gallery_id)
    model_id = gallery.active_model_id
    decoded = components.pipeline.decode(image, timings)
    if params.every_face:
        probes = matching.probe_all(components, decoded, model_id, timings)
        others: list[BBox] = []
    else:
        chosen = matching.probe_in(
            components, decoded, model_id, timings, probe_selector(params.face)
        )
        probes, others = [chosen.face], chosen.others
    outcomes = [
        matching.search(
            session,
            components,
            principal=principal,
            gallery=gallery,
            probe=probe,
            image=image,
            k=params.k,
            threshold=params.threshold,
            started=started,
        )  # fmt: skip
        for probe in probes
    ]
    session.commit()
    outcome = outcomes[0]
    row = outcome.verification
    return SearchResponse(
        verification_id=row.id,
        candidates=[Candidate(**c) for c in outcome.candidates],
        threshold=float(row.threshold or 0.0),
        model_id=str(row.model_id),
        probe=face_out(outcome.probe),
        latency_ms=float(row.latency_ms or 0.0),
        other_faces=[BBoxOut(**b.as_dict()) for b in others],
        faces=[
            SearchFaceResult(
                verification_id=o.verification.id,
                probe=face_out(o.probe),
                candidates=[Candidate(**c) for c in o.candidates],
            )
            for o in outcomes
        ]
        if params.every_face
        else None,
    )


def detect(components: Components, image: bytes, max_faces: int | None) -> DetectResponse:
    decoded = components.pipeline.decode(image)
    faces = components.pipeline.detect_image(decoded, max_faces=max_faces)
    if not faces:
        raise NoFace()
    height, width = decoded.shape[:2]
    return DetectResponse(faces=[face_out(f) for f in faces], width=width, height=height)
