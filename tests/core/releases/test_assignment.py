"""Arm choice: canary proportions, stickiness by user, experiment splits, pinned labels."""

from __future__ import annotations

import math

from core.releases import Arm, ExperimentSpec, SubjectState, bucket, choose_arm

SALT = "test-salt"


def state(canary_weight: float | None = None, experiment: ExperimentSpec | None = None) -> SubjectState:
    labels = {"production": Arm("production", "aaaaaaaaaaaa", None)}
    if canary_weight is not None:
        labels["canary"] = Arm("canary", "bbbbbbbbbbbb", None, canary_weight)
    return SubjectState("greet", "prompt", labels, experiment)


def within(count: int, n: int, p: float) -> bool:
    """Within 4.5 standard deviations of the binomial mean (a false alarm about once in 300,000 runs)."""
    return abs(count - n * p) <= 4.5 * math.sqrt(n * p * (1 - p))


def test_canary_share_matches_its_weight():
    n = 20_000
    for weight in (0.05, 0.3):
        chosen = [choose_arm(state(weight), f"user-{i}", SALT) for i in range(n)]
        canary = sum(1 for arm in chosen if arm is not None and arm.variant == "canary")
        assert within(canary, n, weight), (weight, canary)


def test_assignment_is_sticky_per_user_and_differs_by_salt():
    users = [f"user-{i}" for i in range(2_000)]
    first = [choose_arm(state(0.5), user, SALT).variant for user in users]  # type: ignore[union-attr]
    again = [choose_arm(state(0.5), user, SALT).variant for user in users]  # type: ignore[union-attr]
    assert first == again
    other_salt = [choose_arm(state(0.5), user, "another").variant for user in users]  # type: ignore[union-attr]
    assert first != other_salt


def test_raising_the_weight_keeps_earlier_canary_users_in_the_canary():
    users = [f"user-{i}" for i in range(5_000)]
    small = {u for u in users if choose_arm(state(0.05), u, SALT).variant == "canary"}  # type: ignore[union-attr]
    large = {u for u in users if choose_arm(state(0.25), u, SALT).variant == "canary"}  # type: ignore[union-attr]
    assert small and small <= large and len(large) > len(small)


def test_experiment_arms_split_by_weight_and_win_over_the_canary():
    arms = (Arm("control", "aaaaaaaaaaaa", None, 1.0, "tone"), Arm("friendly", "bbbbbbbbbbbb", None, 3.0, "tone"))
    subject = state(0.5, ExperimentSpec("tone", arms))
    n = 10_000
    chosen = [choose_arm(subject, f"user-{i}", SALT) for i in range(n)]
    assert {arm.variant for arm in chosen if arm is not None} == {"control", "friendly"}
    friendly = sum(1 for arm in chosen if arm is not None and arm.variant == "friendly")
    assert within(friendly, n, 0.75)
    assert all(arm is not None and arm.experiment == "tone" for arm in chosen)


def test_pinned_labels_and_missing_production():
    assert choose_arm(state(0.01), "u", SALT, pinned="canary").variant == "canary"  # type: ignore[union-attr]
    assert choose_arm(state(), "u", SALT, pinned="canary") is None
    only_canary = SubjectState("greet", "prompt", {"canary": Arm("canary", "b", None, 0.1)})
    assert choose_arm(only_canary, "u", SALT).variant == "canary"  # type: ignore[union-attr]
    assert choose_arm(SubjectState("greet", "prompt"), "u", SALT) is None


def test_bucket_is_uniform_enough():
    values = [bucket(SALT, "greet", "canary", str(i)) for i in range(10_000)]
    assert 0.0 <= min(values) and max(values) < 1.0
    assert abs(sum(values) / len(values) - 0.5) < 0.02
