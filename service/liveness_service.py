"""Liveness service functions: challenge sessions and the passive check. Routes parse
and call one of these; the CLI or verify may call them too.

Detection and embeddings come from the face pipeline (``app.state.components.pipeline``;
one is built here on first use only for an app without components); mesh, tracking, the
session state machine and the passive signals come from ``liveness``.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from indexing.errors import CorruptImage, ImageError, ImageTooLarge, UnsupportedImage
from indexing.pipeline import FacePipeline
from indexing.types import BBox
from liveness.actions import ChallengePolicy, random_actions
from liveness.features import FeatureExtractor
from liveness.frames import measure_frame
from liveness.passive.check import PassiveChecker, PassiveResult
from liveness.passive.onnx_model import load_operator_model
from liveness.session import (
    PASSED,
    Observation,
    SessionState,
    advance,
    embedding_needed,
    expire_if_due,
    needs_iris,
)
from liveness.tracking import TrackState
from service.auth.principal import Principal
from service.db.models import LivenessSession, Verification
from service.problems import (
    Conflict,
    NotFound,
    PayloadTooLarge,
    Problem,
    Unprocessable,
    UnsupportedMediaType,
)
from service.request_context import current_request_id
from service.settings import Settings


class SessionClosed(Conflict):
    slug, title = "liveness-session-closed", "Liveness session already finished"


class SessionExpired(Problem):
    status, slug, title = 410, "liveness-session-expired", "Liveness session expired"


class DuplicateFrame(Conflict):
    slug, title = "duplicate-frame", "Frame already received"


class NoFaceForLiveness(Unprocessable):
    slug, title = "no-face", "No face found"


class SessionNotPassed(Conflict):
    slug, title = "liveness-session-not-passed", "Liveness session has not passed"


@dataclass
class LivenessRuntime:
    """Everything liveness needs at request time; built once in the app's lifespan."""

    settings: Settings
    extractor: FeatureExtractor
    passive: PassiveChecker
    policy: ChallengePolicy = field(default_factory=ChallengePolicy)
    session_ttl_s: float = 120.0
    model_id: str = "dlib-resnet-v1-onnx"

    def pipeline(self, app_state: Any) -> FacePipeline:
        """The app's one face pipeline (built in lifespan with the other components)."""
        return app_state.components.pipeline


def build_runtime(settings: Settings) -> LivenessRuntime:
    model = load_operator_model(settings.model_dir, settings.intra_op_threads)
    return LivenessRuntime(
        settings=settings,
        extractor=FeatureExtractor(),
        passive=PassiveChecker(model),
        model_id=settings.default_model,
    )


def _runtime(app_state: Any) -> LivenessRuntime:
    runtime: LivenessRuntime | None = getattr(app_state, "liveness", None)
    if runtime is None:
        runtime = build_runtime(app_state.settings)
        app_state.liveness = runtime
    return runtime


def _image_problem(exc: ImageError) -> Problem:
    if isinstance(exc, ImageTooLarge):
        return PayloadTooLarge(exc.detail)
    if isinstance(exc, UnsupportedImage):
        return UnsupportedMediaType(exc.detail)
    if isinstance(exc, CorruptImage):
        problem = Problem(exc.detail)
        problem.slug, problem.title = "corrupt-image", "Image could not be decoded"
        return problem
    return Problem(exc.detail)


def _decode(pipeline: FacePipeline, data: bytes) -> np.ndarray:
    try:
        return pipeline.decode(data)
    except ImageError as exc:
        raise _image_problem(exc) from exc


# --- the passive check ---------------------------------------------------------------


def passive_check(app_state: Any, image_bytes: bytes) -> PassiveResult:
    """The passive check of the largest face in ``image_bytes`` (verify calls this for
    ``liveness=true``). Raises problem+json errors for bad images and no face."""
    runtime = _runtime(app_state)
    pipeline = runtime.pipeline(app_state)
    return passive_check_image(runtime.passive, pipeline, _decode(pipeline, image_bytes))


def passive_check_image(
    checker: PassiveChecker, pipeline: FacePipeline, image: np.ndarray
) -> PassiveResult:
    """The passive check of the largest face of a decoded image (the benchmark times
    this with the decode): the detector's box is all it needs, so the pipeline's
    landmarks, chips and quality are not run."""
    found = pipeline.find_faces(image)
    if not found:
        raise NoFaceForLiveness("no face found in the image")
    return passive_check_at(checker, image, found[0].bbox)


def passive_check_at(checker: PassiveChecker, image: np.ndarray, box: BBox) -> PassiveResult:
    """The passive check of the face at ``box`` in a decoded image."""
    result = checker(image, (box.left, box.top, box.right, box.bottom))
    result.signals["bbox"] = box.as_dict()
    return result


def passive_check_face(app_state: Any, image: np.ndarray, box: BBox) -> PassiveResult:
    """For verify with ``liveness=true``: the probe's face, already decoded and found by
    the verify itself, so neither happens twice."""
    return passive_check_at(_runtime(app_state).passive, image, box)


def check_image(
    app_state: Any, session: Session, principal: Principal, image_bytes: bytes
) -> tuple[PassiveResult, uuid.UUID]:
    """``POST /v1/liveness``: the passive check, recorded in the verification history."""
    started = time.perf_counter()
    result = passive_check(app_state, image_bytes)
    row = Verification(
        kind="liveness",
        principal_type=principal.kind,
        principal_id=principal.id,
        request_id=current_request_id(),
        probe_bbox=result.signals.get("bbox"),
        liveness_decision=result.decision,
        liveness_score=result.score,
        liveness_signals={"mode": "passive", **result.signals},
        latency_ms=(time.perf_counter() - started) * 1000,
    )
    session.add(row)
    session.flush()
    return result, row.id


# --- challenge sessions --------------------------------------------------------------


@dataclass(frozen=True)
class SessionView:
    id: uuid.UUID
    actions: list[str]
    expires_at: datetime
    status: str
    reasons: list[str]
    frames_received: int
    completed: list[dict[str, Any]]
    signals: dict[str, Any] | None
    verification_id: uuid.UUID | None = None


def _view(row: LivenessSession, runtime: LivenessRuntime) -> SessionView:
    machine = SessionState.from_dict(row.state.get("machine", {"actions": list(row.actions)}))
    return SessionView(
        id=row.id,
        actions=list(row.actions),
        expires_at=row.expires_at,
        status=row.status,
        reasons=list(row.reasons or []),
        frames_received=row.frames_received,
        completed=machine.completed,
        signals=machine.signals(runtime.policy) if machine.done else None,
        verification_id=_as_uuid(row.state.get("verification_id")),
    )


def _as_uuid(value: object) -> uuid.UUID | None:
    return uuid.UUID(str(value)) if value else None


def create_session(app_state: Any, session: Session, principal: Principal) -> SessionView:
    runtime = _runtime(app_state)
    actions = [a.value for a in random_actions()]
    now = datetime.now(UTC)
    machine = SessionState(actions=actions)
    row = LivenessSession(
        id=uuid.uuid4(),
        principal_id=principal.id,
        actions=actions,
        status="pending",
        reasons=[],
        state={"machine": machine.as_dict(), "digests": [], "track": None},
        frames_received=0,
        expires_at=now + timedelta(seconds=runtime.session_ttl_s),
    )
    session.add(row)
    session.flush()
    return _view(row, runtime)


def _load(
    session: Session, principal: Principal, session_id: uuid.UUID, *, lock: bool
) -> LivenessSession:
    query = select(LivenessSession).where(LivenessSession.id == session_id)
    if lock:
        query = query.with_for_update()
    row = session.scalars(query).first()
    # Another key's session is reported as absent, not forbidden: ids are not probes.
    if row is None or row.principal_id != principal.id:
        raise NotFound(f"no liveness session {session_id}")
    return row


def _store(
    row: LivenessSession,
    machine: SessionState,
    track: TrackState | None,
    session: Session,
    principal: Principal,
    runtime: LivenessRuntime,
) -> None:
    state = dict(row.state)
    state["machine"] = machine.as_dict()
    state["digests"] = list(machine.digests)
    state["track"] = track.as_dict() if track is not None and not machine.done else None
    if machine.done and row.completed_at is None:
        row.completed_at = datetime.now(UTC)
        state["verification_id"] = str(_record_outcome(row, machine, session, principal, runtime))
    row.state = state
    row.status = machine.status
    row.reasons = list(machine.reasons)
    row.frames_received = machine.frames


def _record_outcome(
    row: LivenessSession,
    machine: SessionState,
    session: Session,
    principal: Principal,
    runtime: LivenessRuntime,
) -> uuid.UUID:
    signals = machine.signals(runtime.policy)
    depth_score = signals["depth"]["score"]
    history = Verification(
        id=uuid.uuid4(),
        kind="liveness",
        principal_type=principal.kind,
        principal_id=principal.id,
        request_id=current_request_id(),
        model_id=runtime.model_id,
        liveness_decision="live" if machine.status == PASSED else "spoof",
        liveness_score=float(depth_score) if depth_score is not None else None,
        liveness_signals={
            "mode": "active",
            "session_id": str(row.id),
            "reasons": list(machine.reasons),
            **signals,
        },
    )
    session.add(history)
    return history.id


def get_session(
    app_state: Any, session: Session, principal: Principal, session_id: uuid.UUID
) -> SessionView:
    runtime = _runtime(app_state)
    row = _load(session, principal, session_id, lock=True)
    machine = SessionState.from_dict(row.state["machine"])
    if not machine.done:
        machine = expire_if_due(machine, now=time.time(), expires_at=row.expires_at.timestamp())
        if machine.done:
            _store(row, machine, None, session, principal, runtime)
    return _view(row, runtime)


# The key is written into the SQL, not bound: only then does the expression match the
# GIN index ix_liveness_sessions_digests in every plan, generic ones included.
_REPLAYED_SQL = text(
    "SELECT 1 FROM liveness_sessions"
    " WHERE id <> :row_id AND (state -> 'digests') @> CAST(:digests AS jsonb) LIMIT 1"
)


def _replayed(session: Session, row_id: uuid.UUID, digest: str) -> bool:
    params = {"row_id": row_id, "digests": json.dumps([digest])}
    return session.execute(_REPLAYED_SQL, params).first() is not None


def post_frame(
    app_state: Any,
    session: Session,
    principal: Principal,
    session_id: uuid.UUID,
    data: bytes,
    *,
    last: bool = False,
) -> SessionView:
    """One frame of a challenge. The session row is locked for the frame's duration, so
    frames of one session are applied one at a time, in arrival order."""
    runtime = _runtime(app_state)
    row = _load(session, principal, session_id, lock=True)
    machine = SessionState.from_dict(row.state["machine"])
    if machine.done:
        raise SessionClosed(
            f"liveness session {session_id} is {machine.status}; sessions are single use",
            status_value=machine.status,
        )
    now = time.time()
    expires_at = row.expires_at.timestamp()
    machine = expire_if_due(machine, now=now, expires_at=expires_at)
    if machine.done:
        _store(row, machine, None, session, principal, runtime)
        session.commit()
        raise SessionExpired(f"liveness session {session_id} expired at {row.expires_at}")
    digest = hashlib.sha256(data).hexdigest()
    if digest in machine.digests:
        raise DuplicateFrame("this frame was already sent to this session")
    if _replayed(session, row.id, digest):
        obs = Observation(digest=digest, faces=0, replayed=True)
        machine = advance(machine, obs, now=now, expires_at=expires_at, policy=runtime.policy)
        _store(row, machine, None, session, principal, runtime)
        return _view(row, runtime)
    # "One face throughout" means: every embedded frame matches the first by the
    # embedding model's own verification threshold.
    pipeline = runtime.pipeline(app_state)
    spec = pipeline.spec(runtime.model_id)
    policy = replace(runtime.policy, same_face=max(runtime.policy.same_face, spec.threshold))
    track_data = row.state.get("track")
    frame = observe_frame(
        runtime,
        pipeline,
        _decode(pipeline, data),
        machine,
        TrackState.from_dict(track_data) if track_data else None,
        digest=digest,
        last=last,
        now=now,
        expires_at=expires_at,
        policy=policy,
    )
    machine = advance(machine, frame.observation, now=now, expires_at=expires_at, policy=policy)
    _store(row, machine, frame.track, session, principal, runtime)
    return _view(row, runtime)


@dataclass(frozen=True)
class ObservedFrame:
    observation: Observation
    track: TrackState | None
    embedded: bool  # an embedding was computed for this frame
    # The need for an embedding showed only after the frame was measured (the faces
    # already detected were embedded then).
    late_embedding: bool


def observe_frame(
    runtime: LivenessRuntime,
    pipeline: FacePipeline,
    image: np.ndarray,
    machine: SessionState,
    track: TrackState | None,
    *,
    digest: str,
    last: bool,
    now: float,
    expires_at: float,
    policy: ChallengePolicy,
) -> ObservedFrame:
    """Everything a session frame needs but the database: faces, mesh (and the iris
    model when a blink can count), tracked motion, continuity, and the embedding when
    ``embedding_needed`` asks for it. The benchmark times this same function."""
    model_ids = [runtime.model_id]
    # When the embedding is certain to be needed, one analyze_image detects and embeds;
    # otherwise the detector alone counts the faces and gives the box.
    certain = (
        track is None
        or machine.reference_embedding is None
        or last
        or machine.unembedded >= policy.max_unembedded
    )
    analyzed = pipeline.analyze_image(image, model_ids=model_ids, max_faces=2) if certain else None
    found = pipeline.find_faces(image) if analyzed is None else []
    boxes = [f.bbox for f in analyzed] if analyzed is not None else [d.bbox for d in found]
    box = None
    if len(boxes) == 1:
        b = boxes[0]
        box = (b.left, b.top, b.right, b.bottom)
    measured = measure_frame(runtime.extractor, image, box, track, iris=needs_iris(machine))
    obs = Observation(
        digest=digest,
        faces=len(boxes),
        features=measured.features,
        motion=measured.motion,
        last=last,
        continuous=measured.continuous,
    )
    if not embedding_needed(machine, obs, now=now, expires_at=expires_at, policy=policy):
        return ObservedFrame(obs, measured.track, False, False)
    late = analyzed is None
    if late:
        # The need showed only now (a break in continuity, or a frame that completes an
        # action): the faces already detected are embedded, not detected again.
        analyzed = pipeline.analyze_detections(image, found[:2], model_ids=model_ids)
    if len(analyzed) != 1:
        # Unreachable today (embedding_needed asks only for frames with one face, and
        # the faces embedded are the ones counted); kept so that a change there can
        # never credit an unchecked face: the frame counts with the faces embedded.
        return ObservedFrame(replace(obs, faces=len(analyzed)), measured.track, False, late)
    embedding = [float(x) for x in analyzed[0].embeddings[runtime.model_id]]
    return ObservedFrame(replace(obs, embedding=embedding), measured.track, True, late)


def session_probe(
    app_state: Any, session: Session, principal: Principal, session_id: uuid.UUID
) -> tuple[list[float], str]:
    """For verify: the embedding (and its model id) of the face in a passed session's
    final frame. The face verify compares is the one that proved liveness."""
    runtime = _runtime(app_state)
    row = _load(session, principal, session_id, lock=False)
    machine = SessionState.from_dict(row.state["machine"])
    if machine.status != PASSED or machine.final_embedding is None:
        raise SessionNotPassed(f"liveness session {session_id} is {machine.status}")
    return list(machine.final_embedding), runtime.model_id
