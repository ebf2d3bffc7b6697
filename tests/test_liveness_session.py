"""The challenge-session state machine on constructed observations: order, timeout,
reuse, a face swapped in mid-session, replayed frames, planar motion, JSON round trip."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from liveness.actions import HEAD_TURNS, Action, ChallengePolicy, random_actions
from liveness.depth import MotionPair
from liveness.features import FrameFeatures
from liveness.session import (
    FAILED,
    PASSED,
    PENDING,
    Observation,
    SessionState,
    advance,
    embedding_needed,
    needs_iris,
)

POLICY = ChallengePolicy()
T0, TTL = 1_000.0, 60.0
NEUTRAL = FrameFeatures(
    ear=0.30,
    iris_visibility=0.6,
    mar=0.05,
    smile=0.60,
    yaw=2.0,
    pitch=-4.0,
    scale=0.10,
    points=((100.0, 100.0), (120.0, 100.0)),
)
FACE_A = [1.0, 0.0, 0.0]
FACE_B = [0.0, 1.0, 0.0]
DEPTH = MotionPair(0.09, 0.06)  # what a real head turn shows: ratio ≈ 0.67
FLAT = MotionPair(0.09, 0.006)  # what a turned photo shows: ratio ≈ 0.07


class Driver:
    """Feeds frames one by one, a second apart, with unique digests."""

    def __init__(self, actions: list[Action], *, expires_at: float = T0 + TTL) -> None:
        self.state = SessionState(actions=[a.value for a in actions])
        self.now = T0
        self.expires_at = expires_at
        self.n = 0

    def frame(
        self,
        features: FrameFeatures | None = NEUTRAL,
        *,
        embedding: list[float] | None = FACE_A,
        motion: MotionPair | None = None,
        faces: int = 1,
        replayed: bool = False,
        last: bool = False,
    ) -> SessionState:
        self.n += 1
        self.now += 1.0
        obs = Observation(
            digest=f"d{self.n}",
            faces=faces if features is not None or faces != 1 else 0,
            features=features,
            embedding=embedding,
            motion=motion,
            replayed=replayed,
            last=last,
        )
        self.state = advance(
            self.state, obs, now=self.now, expires_at=self.expires_at, policy=POLICY
        )
        return self.state

    def baseline(self) -> None:
        self.frame()
        self.frame(motion=MotionPair(0.002, 0.001))


POSES = {
    Action.turn_left: replace(NEUTRAL, yaw=22.0),
    Action.turn_right: replace(NEUTRAL, yaw=-20.0),
    Action.look_up: replace(NEUTRAL, pitch=9.0),
    Action.smile: replace(NEUTRAL, smile=0.70),
    Action.open_mouth: replace(NEUTRAL, mar=0.5),
    Action.move_closer: replace(NEUTRAL, scale=0.13),
}
SHUT = replace(NEUTRAL, ear=0.12, iris_visibility=0.1)


def perform(d: Driver, action: Action, motion: MotionPair = DEPTH) -> None:
    if action == Action.blink:
        d.frame(SHUT, motion=MotionPair(0.004, 0.002))
        d.frame(motion=MotionPair(0.003, 0.002))
        return
    d.frame(POSES[action], motion=motion if action in HEAD_TURNS else None)
    d.frame(motion=MotionPair(0.003, 0.002))  # back to neutral


@pytest.mark.parametrize(
    "actions",
    [
        [Action.turn_left, Action.blink],
        [Action.smile, Action.turn_right, Action.open_mouth],
        [Action.look_up, Action.move_closer, Action.blink, Action.turn_left],
    ],
)
def test_actions_in_order_with_depth_pass(actions: list[Action]) -> None:
    d = Driver(actions)
    d.baseline()
    for action in actions:
        assert d.state.status == PENDING
        perform(d, action)
    assert d.state.status == PASSED, d.state.reasons
    assert [c["action"] for c in d.state.completed] == [a.value for a in actions]
    assert d.state.final_embedding == FACE_A
    signals = d.state.signals(POLICY)
    assert signals["depth"]["pairs"] >= 1 and signals["depth"]["planar"] is False


def test_wrong_order_fails() -> None:
    d = Driver([Action.turn_left, Action.turn_right])
    d.baseline()
    d.frame(POSES[Action.turn_right], motion=DEPTH)
    assert d.state.status == FAILED
    assert "wrong_order" in d.state.reasons and "early:turn_right" in d.state.reasons


def test_a_blink_out_of_turn_is_not_wrong_order() -> None:
    d = Driver([Action.turn_left, Action.blink])
    d.baseline()
    d.frame(SHUT)  # people blink on their own; that must not fail the session
    d.frame()
    assert d.state.status == PENDING
    perform(d, Action.turn_left)
    perform(d, Action.blink)
    assert d.state.status == PASSED


def test_blink_needs_the_eyes_to_reopen() -> None:
    d = Driver([Action.turn_left, Action.blink])
    d.baseline()
    perform(d, Action.turn_left)
    d.frame(SHUT)
    assert d.state.progress == 1 and d.state.status == PENDING
    d.frame(SHUT, last=True)
    assert d.state.status == FAILED
    assert "incomplete" in d.state.reasons and "not_performed:blink" in d.state.reasons


def test_timeout_fails_with_the_missing_actions() -> None:
    d = Driver([Action.turn_left, Action.smile], expires_at=T0 + 4.5)
    d.baseline()
    perform(d, Action.turn_left)  # frames at T0+3 and T0+4
    d.frame(POSES[Action.smile])  # T0+5: too late
    assert d.state.status == FAILED
    assert d.state.reasons == ["expired", "not_performed:smile"]


def test_finished_session_is_not_advanced_again() -> None:
    d = Driver([Action.turn_left, Action.blink])
    d.baseline()
    perform(d, Action.turn_left)
    perform(d, Action.blink)
    assert d.state.status == PASSED
    frames = d.state.frames
    d.frame(POSES[Action.turn_right], embedding=FACE_B)
    assert d.state.status == PASSED and d.state.frames == frames


def test_a_different_face_mid_session_fails() -> None:
    d = Driver([Action.turn_left, Action.blink])
    d.baseline()
    perform(d, Action.turn_left)
    d.frame(embedding=FACE_B)
    assert d.state.status == FAILED and d.state.reasons == ["face_changed"]
    assert d.state.min_similarity == pytest.approx(0.0)


def test_a_frame_replayed_from_another_session_fails() -> None:
    d = Driver([Action.turn_left, Action.blink])
    d.baseline()
    d.frame(replayed=True)
    assert d.state.status == FAILED and d.state.reasons == ["replayed_frame"]


def test_planar_motion_fails_as_soon_as_it_is_seen() -> None:
    d = Driver([Action.turn_left, Action.blink])
    d.baseline()
    d.frame(replace(NEUTRAL, yaw=6.0), motion=FLAT)
    assert d.state.status == PENDING  # one pair may be noise
    d.frame(replace(NEUTRAL, yaw=8.0), motion=replace(FLAT, motion=0.12, residual=0.01))
    assert d.state.status == FAILED and d.state.reasons == ["planar_motion"]


def test_actions_without_any_head_motion_prove_no_depth() -> None:
    d = Driver([Action.smile, Action.open_mouth])
    d.baseline()
    perform(d, Action.smile)
    perform(d, Action.open_mouth)
    assert d.state.status == FAILED and d.state.reasons == ["no_depth_evidence"]


def test_two_faces_fail_and_lost_face_fails_after_the_allowance() -> None:
    d = Driver([Action.turn_left, Action.blink])
    d.frame(faces=2)
    assert d.state.reasons == ["multiple_faces"]
    d = Driver([Action.turn_left, Action.blink])
    d.baseline()
    for _ in range(POLICY.max_missing):
        d.frame(None, embedding=None)
    assert d.state.status == PENDING
    d.frame(None, embedding=None)
    assert d.state.reasons == ["face_lost"]


def test_state_round_trips_through_json() -> None:
    d = Driver([Action.turn_left, Action.blink])
    d.baseline()
    perform(d, Action.turn_left)
    restored = SessionState.from_dict(json.loads(json.dumps(d.state.as_dict())))
    assert restored == d.state


def test_random_actions_are_distinct_and_include_a_head_turn() -> None:
    seen = set()
    for _ in range(300):
        actions = random_actions()
        assert 2 <= len(actions) <= 4
        assert len(set(actions)) == len(actions)
        assert any(a in HEAD_TURNS for a in actions)
        seen.add(tuple(actions))
    assert len(seen) > 50  # really random, not a fixed few


def _needed(d: Driver, **obs: object) -> bool:
    fields = {"digest": "next", "faces": 1, "features": NEUTRAL, "continuous": True, **obs}
    return embedding_needed(
        d.state, Observation(**fields), now=d.now + 1, expires_at=d.expires_at, policy=POLICY
    )


def test_which_frames_must_be_embedded() -> None:
    d = Driver([Action.turn_left, Action.blink])
    assert _needed(d)  # the first face: the reference
    d.baseline()
    assert not _needed(d)  # the same face, followed without a break
    assert _needed(d, continuous=False)  # a break in continuity
    assert _needed(d, last=True)  # the client's last frame
    assert _needed(d, features=POSES[Action.turn_left])  # completes an action
    assert not _needed(d, faces=0, features=None) and not _needed(d, faces=2)
    for _ in range(POLICY.max_unembedded):
        assert not _needed(d)
        d.frame(embedding=None, motion=MotionPair(0.003, 0.002))
    assert d.state.unembedded == POLICY.max_unembedded
    assert _needed(d)  # at most max_unembedded face frames in a row go without
    d.frame()
    assert d.state.unembedded == 0 and not _needed(d)


def test_a_frame_that_would_pass_the_session_is_embedded() -> None:
    d = Driver([Action.turn_left, Action.smile])
    d.baseline()
    perform(d, Action.turn_left)
    assert _needed(d, features=POSES[Action.smile])
    assert not _needed(d, features=NEUTRAL)


def test_an_action_is_never_credited_without_an_embedding() -> None:
    d = Driver([Action.turn_left, Action.blink])
    d.baseline()
    with pytest.raises(ValueError, match="without an embedding"):
        d.frame(POSES[Action.turn_left], embedding=None, motion=DEPTH)


def test_a_face_swapped_in_is_caught_on_the_next_embedded_frame() -> None:
    """Frames skipped by the schedule are followed, by construction, by an embedded one
    within max_unembedded frames: a swapped-in face that stays is caught there."""
    d = Driver([Action.turn_left, Action.blink])
    d.baseline()
    for _ in range(POLICY.max_unembedded):
        d.frame(embedding=None, motion=MotionPair(0.003, 0.002))
    assert _needed(d)
    d.frame(embedding=FACE_B)
    assert d.state.status == FAILED and d.state.reasons == ["face_changed"]


def test_the_iris_model_runs_only_while_a_blink_is_due() -> None:
    d = Driver([Action.turn_left, Action.blink])
    assert not needs_iris(d.state)  # baseline frames judge no action
    d.baseline()
    assert not needs_iris(d.state)  # a turn is due
    perform(d, Action.turn_left)
    assert needs_iris(d.state)
    perform(d, Action.blink)
    assert d.state.status == PASSED and not needs_iris(d.state)
    blink = Driver([Action.blink, Action.turn_left])
    blink.baseline()
    assert needs_iris(blink.state)
    with pytest.raises(ValueError, match="without the iris model"):
        blink.frame(replace(NEUTRAL, iris_visibility=None))
