"""The challenge-session state machine. Pure: state and one frame's observation in, new
state out; no I/O, no clock (``now`` is passed in). The state round-trips through JSON
so it can live in ``liveness_sessions.state``.

A session passes when its actions happen in the asked order, before it expires, by one
face throughout, and the head's motion shows depth (is not planar).

"One face throughout" is checked with embeddings, but not necessarily on every frame
(an embedding costs more than everything else a frame needs). :func:`embedding_needed`
says which frames must be embedded: the first, every frame that is not provably the
same face as the one before (see ``liveness.frames`` for the continuity test), every
frame that completes an action or could end the session, and at least one in every
``max_unembedded + 1`` face frames. A face swapped in is therefore embedded on the
frame where it appears, unless it appears with unbroken pixel continuity (then at the
latest ``max_unembedded`` frames later), and always before it can complete an action
or be the face that verify compares.
"""

from __future__ import annotations

import copy
import statistics
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from liveness.actions import DELIBERATE, Action, Baseline, ChallengePolicy, eyes_open, shows
from liveness.depth import MotionPair, verdict
from liveness.features import FrameFeatures

PENDING, PASSED, FAILED = "pending", "passed", "failed"


@dataclass(frozen=True)
class Observation:
    """What the service measured on one frame."""

    digest: str  # content hash of the frame bytes (replay detection)
    faces: int  # faces the detector found
    features: FrameFeatures | None = None  # None when there is no usable face
    embedding: list[float] | None = None  # L2-normalised
    motion: MotionPair | None = None  # tracked motion against the first frame
    replayed: bool = False  # the frame was already sent to another session
    last: bool = False  # the client says this is its last frame: decide now
    # The face was followed from the previous frame without a break (same mesh crop,
    # image points carried along with a low matching error): see ``liveness.frames``.
    continuous: bool = False


@dataclass
class SessionState:
    actions: list[str]
    status: str = PENDING
    reasons: list[str] = field(default_factory=list)
    progress: int = 0  # index of the next action to perform
    completed: list[dict[str, Any]] = field(default_factory=list)
    frames: int = 0
    missing: int = 0
    baseline_buffer: list[dict[str, float]] = field(default_factory=list)
    baseline: dict[str, float] | None = None
    eyes_shut: bool = False  # blink in progress: eyes seen closed, waiting to reopen
    reference_embedding: list[float] | None = None
    final_embedding: list[float] | None = None
    min_similarity: float | None = None
    unembedded: int = 0  # face frames since the last embedded one
    digests: list[str] = field(default_factory=list)
    motion: list[list[float]] = field(default_factory=list)  # [motion, residual] pairs

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SessionState:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    @property
    def done(self) -> bool:
        return self.status != PENDING

    def signals(self, policy: ChallengePolicy) -> dict[str, Any]:
        """Per-signal scores for the verification history."""
        depth = verdict([MotionPair(m, r) for m, r in self.motion], policy.depth)
        return {
            "actions": self.actions,
            "completed": self.completed,
            "frames": self.frames,
            "depth": depth.as_dict(),
            "min_face_similarity": self.min_similarity,
            "baseline": self.baseline,
        }


def needs_iris(state: SessionState) -> bool:
    """Does the next frame need the iris model? Only a blink reads iris visibility, and
    only while it is the action asked for (a blink out of turn is neither credited nor
    an error), once the baseline is set (baseline frames do not judge actions)."""
    return (
        not state.done
        and state.baseline is not None
        and state.progress < len(state.actions)
        and state.actions[state.progress] == Action.blink.value
    )


def embedding_needed(
    state: SessionState,
    obs: Observation,
    *,
    now: float,
    expires_at: float,
    policy: ChallengePolicy,
) -> bool:
    """Must this frame (``obs`` without its embedding) be embedded before it is applied?

    Yes for the first face, a frame not continuous with the one before, the last frame
    the client sends, once ``max_unembedded`` face frames in a row went without, and any
    frame that would complete an action or pass the session (found by applying the frame
    to a copy of the state): an action is only ever credited to, and verify only ever
    compares, a face whose embedding matched the first frame's.
    """
    if state.done or obs.replayed or obs.faces != 1 or obs.features is None:
        return False
    if (
        state.reference_embedding is None
        or not obs.continuous
        or obs.last
        or state.unembedded >= policy.max_unembedded
    ):
        return True
    # The trial assumes the face matches (it is given the reference embedding): the
    # question is only what the frame would do if it did.
    same = replace(obs, embedding=state.reference_embedding)
    trial = advance(copy.deepcopy(state), same, now=now, expires_at=expires_at, policy=policy)
    return trial.progress != state.progress or trial.status == PASSED


def _fail(state: SessionState, *reasons: str) -> SessionState:
    state.status = FAILED
    for reason in reasons:
        if reason not in state.reasons:
            state.reasons.append(reason)
    return state


def expire_if_due(state: SessionState, *, now: float, expires_at: float) -> SessionState:
    """A pending session past its expiry fails; call before reading or advancing."""
    if state.status == PENDING and now >= expires_at:
        return _fail(state, "expired", *_missing_actions(state))
    return state


def _missing_actions(state: SessionState) -> list[str]:
    return [f"not_performed:{a}" for a in state.actions[state.progress :]]


def _cosine(a: list[float], b: list[float]) -> float:
    return float(sum(x * y for x, y in zip(a, b, strict=True)))


def advance(
    state: SessionState,
    obs: Observation,
    *,
    now: float,
    expires_at: float,
    policy: ChallengePolicy,
) -> SessionState:
    """Apply one frame. A finished session is returned unchanged (sessions are single
    use; the service refuses the frame before calling this)."""
    state = expire_if_due(state, now=now, expires_at=expires_at)
    if state.done:
        return state
    state.frames += 1
    if obs.replayed:
        return _fail(state, "replayed_frame")
    state.digests.append(obs.digest)
    if state.frames > policy.max_frames:
        return _fail(state, "too_many_frames", *_missing_actions(state))
    if obs.faces > 1:
        return _fail(state, "multiple_faces")
    if obs.faces == 0 or obs.features is None:
        state.missing += 1
        if state.missing > policy.max_missing:
            return _fail(state, "face_lost")
        return _finish_if_last(state, obs, policy)
    if obs.embedding is None:
        state.unembedded += 1
    else:
        state.unembedded = 0
        if not _same_face(state, obs.embedding, policy):
            return _fail(state, "face_changed")
    if obs.motion is not None:
        state.motion.append([round(obs.motion.motion, 5), round(obs.motion.residual, 5)])
        if _planar(state, policy):
            return _fail(state, "planar_motion")
    progress = state.progress
    _track_actions(state, obs.features, policy)
    if state.progress != progress and obs.embedding is None:
        # ``embedding_needed`` asks for an embedding on every such frame; crediting an
        # action to a face never compared with the first one would be a silent hole.
        raise ValueError("an action was completed on a frame without an embedding")
    if state.done:
        return state
    if state.progress == len(state.actions):
        return _decide(state, policy)
    return _finish_if_last(state, obs, policy)


def _same_face(state: SessionState, embedding: list[float], policy: ChallengePolicy) -> bool:
    state.final_embedding = list(embedding)
    if state.reference_embedding is None:
        state.reference_embedding = list(embedding)
        return True
    similarity = _cosine(state.reference_embedding, embedding)
    if state.min_similarity is None or similarity < state.min_similarity:
        state.min_similarity = round(similarity, 4)
    return similarity >= policy.same_face


def _planar(state: SessionState, policy: ChallengePolicy) -> bool:
    return verdict([MotionPair(m, r) for m, r in state.motion], policy.depth).planar


def _track_actions(state: SessionState, f: FrameFeatures, policy: ChallengePolicy) -> None:
    if state.baseline is None:
        state.baseline_buffer.append(
            {
                "ear": f.ear,
                "mar": f.mar,
                "smile": f.smile,
                "yaw": f.yaw,
                "pitch": f.pitch,
                "scale": f.scale,
            }
        )
        if len(state.baseline_buffer) >= policy.baseline_frames:
            keys = state.baseline_buffer[0].keys()
            state.baseline = {
                k: statistics.median(b[k] for b in state.baseline_buffer) for k in keys
            }
        return
    base = Baseline(**state.baseline)
    current = Action(state.actions[state.progress])
    for later in state.actions[state.progress + 1 :]:
        action = Action(later)
        if action in DELIBERATE and action != current and shows(action, f, base, policy):
            _fail(state, "wrong_order", f"early:{action.value}")
            return
    if current == Action.blink:
        if shows(Action.blink, f, base, policy):
            state.eyes_shut = True
            return
        done = state.eyes_shut and eyes_open(f, base, policy)
    else:
        done = shows(current, f, base, policy)
    if done:
        state.completed.append({"action": current.value, "frame": state.frames})
        state.progress += 1
        state.eyes_shut = False


def _decide(state: SessionState, policy: ChallengePolicy) -> SessionState:
    depth = verdict([MotionPair(m, r) for m, r in state.motion], policy.depth)
    if depth.pairs == 0:
        return _fail(state, "no_depth_evidence")
    if depth.planar or (depth.score is not None and depth.score <= policy.depth.planar_ratio):
        return _fail(state, "planar_motion")
    state.status = PASSED
    return state


def _finish_if_last(state: SessionState, obs: Observation, policy: ChallengePolicy) -> SessionState:
    if obs.last and not state.done:
        return _fail(state, "incomplete", *_missing_actions(state))
    return state
