"""Active liveness: challenge sessions, one frame at a time. Routes parse and call one
of these; verify takes a passed session's face through :func:`session_probe`.

Mesh, tracking, the session state machine and the frame observation come from
``liveness``; detection and embeddings from the runtime's face pipeline.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from liveness.actions import ChallengePolicy, random_actions
from liveness.observe import ObservedFrame, observe_frame
from liveness.session import PASSED, Observation, SessionState, advance, expire_if_due
from liveness.tracking import TrackState
from service.core.principal import Principal
from service.core.problems import Conflict, NotFound, Problem
from service.db.models import LivenessSession
from service.domain import history
from service.domain.liveness.passive import decode
from service.domain.liveness.runtime import LivenessRuntime


class SessionClosed(Conflict):
    slug, title = "liveness-session-closed", "Liveness session already finished"


class SessionExpired(Problem):
    status, slug, title = 410, "liveness-session-expired", "Liveness session expired"


class DuplicateFrame(Conflict):
    slug, title = "duplicate-frame", "Frame already received"


class SessionNotPassed(Conflict):
    slug, title = "liveness-session-not-passed", "Liveness session has not passed"


class SessionUsed(Conflict):
    slug, title = "liveness-session-used", "Liveness session already used"


@dataclass(frozen=True)
class SessionProbe:
    """What a passed session hands to its one verify."""

    row: LivenessSession
    embedding: list[float]
    model_id: str
    score: float | None
    signals: dict[str, Any]


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


def create_session(runtime: LivenessRuntime, session: Session, principal: Principal) -> SessionView:
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
        # populate_existing: a row read earlier in this session is refreshed, not reused.
        query = query.with_for_update().execution_options(populate_existing=True)
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
    row_out = history.record(
        session,
        kind="liveness",
        principal=principal,
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
    return row_out.id


def get_session(
    runtime: LivenessRuntime, session: Session, principal: Principal, session_id: uuid.UUID
) -> SessionView:
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


# A frame observed against a state another frame changed meanwhile is observed again,
# this many times at most, before the client is told to resend.
_FRAME_ATTEMPTS = 3


class FrameRaced(Conflict):
    slug, title = "liveness-frame-conflict", "Frames of one session arrived at once"


def _version(row: LivenessSession) -> str:
    return row.status + json.dumps(row.state, sort_keys=True)


def post_frame(
    runtime: LivenessRuntime,
    session: Session,
    principal: Principal,
    session_id: uuid.UUID,
    data: bytes,
    *,
    last: bool = False,
) -> SessionView:
    """One frame of a challenge, run in a CPU-pool thread.

    The CPU work (decode, detection, mesh, embedding) runs with no row locked and no
    transaction open: the row is read and checked under lock, the lock released, the
    frame observed, then the row locked again and the frame applied only if no other
    frame was applied meanwhile; otherwise it is observed again against the new state.
    Frames of one session are so applied one at a time, each against the state it was
    observed with, and a slow frame stalls nothing else."""
    digest = hashlib.sha256(data).hexdigest()
    image = None
    for _ in range(_FRAME_ATTEMPTS):
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
        if digest in machine.digests:
            raise DuplicateFrame("this frame was already sent to this session")
        if _replayed(session, row.id, digest):
            obs = Observation(digest=digest, faces=0, replayed=True)
            machine = advance(machine, obs, now=now, expires_at=expires_at, policy=runtime.policy)
            _store(row, machine, None, session, principal, runtime)
            return _view(row, runtime)
        seen = _version(row)
        track_data = row.state.get("track")
        session.commit()  # releases the row lock before the CPU work
        if image is None:
            image = decode(runtime.pipeline, data)
        frame = _observe(runtime, image, machine, track_data, digest, last, now, expires_at)
        row = _load(session, principal, session_id, lock=True)
        if _version(row) != seen:
            continue
        policy = _frame_policy(runtime)
        machine = advance(machine, frame.observation, now=now, expires_at=expires_at, policy=policy)
        _store(row, machine, frame.track, session, principal, runtime)
        return _view(row, runtime)
    raise FrameRaced(f"frames of liveness session {session_id} keep arriving at once; resend")


def _frame_policy(runtime: LivenessRuntime) -> ChallengePolicy:
    # "One face throughout" means: every embedded frame matches the first by the
    # embedding model's own verification threshold.
    spec = runtime.pipeline.spec(runtime.model_id)
    return replace(runtime.policy, same_face=max(runtime.policy.same_face, spec.threshold))


def _observe(
    runtime: LivenessRuntime,
    image: Any,  # noqa: ANN401 - the decoded RGB array
    machine: SessionState,
    track_data: dict[str, Any] | None,
    digest: str,
    last: bool,
    now: float,
    expires_at: float,
) -> ObservedFrame:
    return observe_frame(
        runtime.extractor,
        runtime.pipeline,
        runtime.model_id,
        image,
        machine,
        TrackState.from_dict(track_data) if track_data else None,
        digest=digest,
        last=last,
        now=now,
        expires_at=expires_at,
        policy=_frame_policy(runtime),
    )


def session_probe(
    runtime: LivenessRuntime, session: Session, principal: Principal, session_id: uuid.UUID
) -> SessionProbe:
    """For verify: the embedding (and its model id) of the face in a passed session's
    final frame. The face verify compares is the one that proved liveness.

    The row is locked and marked used in the verify's transaction: of two verifies racing
    on one session, the second waits, then sees it used. A verify that fails rolls the
    mark back with everything else, so the session is spent only by a recorded verify."""
    row = _load(session, principal, session_id, lock=True)
    machine = SessionState.from_dict(row.state["machine"])
    if machine.status != PASSED or machine.final_embedding is None:
        raise SessionNotPassed(f"liveness session {session_id} is {machine.status}")
    if row.state.get("used_at"):
        raise SessionUsed(
            f"liveness session {session_id} already backed a verify; run a new one",
            verification_id=row.state.get("used_by"),
        )
    now = datetime.now(UTC)
    valid_until = (row.completed_at or now) + timedelta(seconds=runtime.session_validity_s)
    if row.completed_at is None or now > valid_until:
        raise SessionExpired(
            f"liveness session {session_id} passed more than "
            f"{runtime.session_validity_s:g} s ago; run a new one"
        )
    row.state = {**row.state, "used_at": now.isoformat()}
    signals = machine.signals(runtime.policy)
    score = signals["depth"]["score"]
    return SessionProbe(
        row=row,
        embedding=list(machine.final_embedding),
        model_id=runtime.model_id,
        score=float(score) if score is not None else None,
        signals={"mode": "active", "session_id": str(row.id), **signals},
    )


def mark_used(probe: SessionProbe, verification_id: uuid.UUID) -> None:
    """Name the verify the session backed, for the 409 a second use gets."""
    probe.row.state = {**probe.row.state, "used_by": str(verification_id)}
