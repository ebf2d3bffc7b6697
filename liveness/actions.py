"""Challenge actions, how a random challenge is drawn, and when a frame shows an action."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from enum import StrEnum

from liveness.depth import DepthPolicy
from liveness.features import FrameFeatures


class Action(StrEnum):
    blink = "blink"
    turn_left = "turn_left"  # the person's own left: nose toward image right
    turn_right = "turn_right"
    look_up = "look_up"
    smile = "smile"
    open_mouth = "open_mouth"
    move_closer = "move_closer"


# Actions that rotate the head: only they show the parallax depth from motion needs, so
# every challenge holds at least one.
HEAD_TURNS = (Action.turn_left, Action.turn_right, Action.look_up)
# Actions that a person does not do by accident while doing another one. Seeing one of
# these before its turn fails the session ("wrong order"); a blink or a smile can happen
# on its own and does not.
DELIBERATE = frozenset({Action.turn_left, Action.turn_right, Action.look_up, Action.move_closer})


def random_actions(min_len: int = 2, max_len: int = 4) -> list[Action]:
    """2–4 distinct actions from a CSPRNG, at least one of them a head turn."""
    rng = secrets.SystemRandom()
    count = rng.randint(min_len, max_len)
    first = rng.choice(HEAD_TURNS)
    rest = rng.sample([a for a in Action if a != first], count - 1)
    sequence = [first, *rest]
    rng.shuffle(sequence)
    return sequence


@dataclass(frozen=True)
class ChallengePolicy:
    """Thresholds, relative to the session's own baseline (its first frames), so they
    hold for any camera angle, distance and face."""

    baseline_frames: int = 2
    turn_deg: float = 15.0
    look_up_deg: float = 10.0
    eyes_closed: float = 0.6  # EAR below this × baseline, or iris visibility below 0.25
    eyes_open: float = 0.85
    mouth_open_mar: float = 0.35  # and at least baseline + 0.2
    smile_gain: float = 0.10  # mouth width over eye span grows by 10 %
    closer_gain: float = 1.2  # eye span grows by 20 %
    max_frames: int = 150
    max_missing: int = 5  # frames without a face before the session fails
    same_face: float = 0.5  # cosine similarity to the first frame's embedding
    # Face frames in a row that may go without an embedding, each one continuous with
    # the one before (``liveness.session.embedding_needed``); 0 embeds every frame.
    max_unembedded: int = 2
    depth: DepthPolicy = field(default_factory=DepthPolicy)


@dataclass(frozen=True)
class Baseline:
    ear: float
    mar: float
    smile: float
    yaw: float
    pitch: float
    scale: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 5) for k, v in self.__dict__.items()}


def _iris(f: FrameFeatures) -> float:
    if f.iris_visibility is None:
        # The service runs the iris model on every frame where a blink can count
        # (``needs_iris``); reaching this is a bug, not a closed eye.
        raise ValueError("a blink is judged on a frame measured without the iris model")
    return f.iris_visibility


def eyes_closed(f: FrameFeatures, b: Baseline, p: ChallengePolicy) -> bool:
    return f.ear < p.eyes_closed * b.ear or _iris(f) < 0.25


def eyes_open(f: FrameFeatures, b: Baseline, p: ChallengePolicy) -> bool:
    return f.ear >= p.eyes_open * b.ear and _iris(f) >= 0.35


def shows(action: Action, f: FrameFeatures, b: Baseline, p: ChallengePolicy) -> bool:
    """Does this frame show ``action``? (A blink needs two frames; see the session.)"""
    match action:
        case Action.turn_left:
            return f.yaw - b.yaw >= p.turn_deg
        case Action.turn_right:
            return f.yaw - b.yaw <= -p.turn_deg
        case Action.look_up:
            return f.pitch - b.pitch >= p.look_up_deg
        case Action.smile:
            return f.smile >= b.smile * (1 + p.smile_gain) and f.mar < p.mouth_open_mar
        case Action.open_mouth:
            return f.mar >= max(p.mouth_open_mar, b.mar + 0.2)
        case Action.move_closer:
            return f.scale >= b.scale * p.closer_gain
        case Action.blink:
            return eyes_closed(f, b, p)
