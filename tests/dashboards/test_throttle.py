"""The sign-in throttle on its own: a fake clock, no Streamlit."""

from __future__ import annotations

from core.config.dashboard import SignInLimits
from dashboards.throttle import SignInThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(**limits) -> tuple[SignInThrottle, Clock]:
    clock = Clock()
    return SignInThrottle(SignInLimits(**limits), clock=clock), clock


def test_five_failures_in_a_minute_lock_the_name_then_lockouts_double():
    throttle, clock = make()
    for _ in range(4):
        assert throttle.failed("ana", "10.0.0.1").allowed
    locked = throttle.failed("ana", "10.0.0.1")
    assert not locked.allowed and locked.retry_after_s == 60
    assert not throttle.check(" ANA ", None).allowed  # the name is locked from anywhere, however spelled
    clock.now += 60
    assert throttle.check("ana", "10.0.0.1").allowed
    for _ in range(5):
        verdict = throttle.failed("ana", "10.0.0.1")
    assert not verdict.allowed and verdict.retry_after_s == 120  # the second lockout doubles
    clock.now += 120
    for _ in range(5):
        verdict = throttle.failed("ana", "10.0.0.1")
    assert verdict.retry_after_s == 240 and verdict.wait_text == "4 min"


def test_failures_outside_the_window_do_not_add_up():
    throttle, clock = make()
    for _ in range(10):
        assert throttle.failed("ana", None).allowed
        clock.now += 15  # 4 failures per minute: never 5 within one
    assert throttle.check("ana", None).allowed


def test_one_address_guessing_many_names_is_locked_too():
    throttle, _ = make()
    for index in range(5):
        throttle.failed(f"user{index}", "203.0.113.9")
    assert not throttle.check("someone-else", "203.0.113.9").allowed
    assert throttle.check("someone-else", "203.0.113.10").allowed


def test_success_clears_the_name_but_not_the_address():
    throttle, _ = make()
    for _ in range(4):
        throttle.failed("ana", "203.0.113.9")
    throttle.succeeded("ana")
    assert throttle.failed("ana", "198.51.100.1").allowed  # the name's count started over
    throttle.failed("bob", "203.0.113.9")  # the address's fifth failure
    assert not throttle.check("carol", "203.0.113.9").allowed


def test_lockouts_are_capped_and_forgotten_after_a_quiet_day():
    throttle, clock = make(max_failures=1, lockout_s=60, max_lockout_s=100, forget_after_s=3600)
    throttle.failed("ana", None)
    clock.now += 60
    assert throttle.failed("ana", None).retry_after_s == 100  # 120 capped at 100
    clock.now += 100 + 3601
    assert throttle.failed("ana", None).retry_after_s == 60  # started over


def test_tracked_names_are_bounded():
    clock = Clock()
    throttle = SignInThrottle(SignInLimits(max_failures=1), max_tracked=100, clock=clock)
    for index in range(1000):
        throttle.failed(f"made-up-{index}", None)
    assert len(throttle._tracks) == 100
    assert not throttle.check("made-up-999", None).allowed
