"""Failed sign-ins throttled per user name and per client address (no Streamlit here: tested on its own).

After `max_failures` failed sign-ins within `window_s`, a name (or an address) is locked out for
`lockout_s`; each further lockout of the same name or address doubles, up to `max_lockout_s`. While locked,
sign-in is refused without checking the password, so the right password does not get in either. A
successful sign-in clears its user name's record (not its address's: one account of one's own must not
reset the guessing budget against others). A name or address quiet for `forget_after_s` starts over.

State lives in the dashboard process (the Streamlit server is one process with a thread per session), so a
restart forgets it and several dashboard replicas each keep their own; tracked names and addresses are
bounded (`max_tracked`, oldest forgotten first) so a spray of made-up names cannot exhaust memory.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from core.config.dashboard import SignInLimits


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a sign-in may be tried now; when not, how long until it may."""

    allowed: bool
    retry_after_s: float = 0.0

    @property
    def wait_text(self) -> str:
        """`42 s`, `3 min` or `2 h`: the wait in words for the sign-in form."""
        seconds = math.ceil(self.retry_after_s)
        if seconds < 120:
            return f"{seconds} s"
        if seconds < 7200:
            return f"{math.ceil(seconds / 60)} min"
        return f"{math.ceil(seconds / 3600)} h"


ALLOWED = Verdict(True)


@dataclass(slots=True)
class _Track:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0
    lockouts: int = 0
    last_failure: float = 0.0


class SignInThrottle:
    """Counts failed sign-ins per user name and per client address and decides when to refuse."""

    def __init__(
        self, limits: SignInLimits | None = None, *, max_tracked: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits or SignInLimits()
        self._max_tracked = max_tracked
        self._clock = clock
        self._tracks: OrderedDict[tuple[str, str], _Track] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, user: str, address: str | None) -> Verdict:
        """May `user` try to sign in from `address` now? (An unknown address is limited by name only.)"""
        now = self._clock()
        with self._lock:
            waits = [track.locked_until - now for key in _keys(user, address)
                     if (track := self._current(key, now)) is not None and track.locked_until > now]
        return Verdict(False, max(waits)) if waits else ALLOWED

    def failed(self, user: str, address: str | None) -> Verdict:
        """Count a failed sign-in; the verdict says whether the next attempt is refused."""
        now = self._clock()
        limits = self.limits
        with self._lock:
            for key in _keys(user, address):
                track = self._current(key, now) or self._add(key)
                track.last_failure = now
                track.failures.append(now)
                while track.failures and track.failures[0] <= now - limits.window_s:
                    track.failures.popleft()
                if len(track.failures) >= limits.max_failures:
                    lockout = min(limits.lockout_s * 2**track.lockouts, limits.max_lockout_s)
                    track.locked_until = max(track.locked_until, now + lockout)
                    track.lockouts += 1
                    track.failures.clear()
        return self.check(user, address)

    def succeeded(self, user: str) -> None:
        """Forget the failures of `user` (a signed-in user starts with a clean record)."""
        with self._lock:
            self._tracks.pop(("user", _name(user)), None)

    def _current(self, key: tuple[str, str], now: float) -> _Track | None:
        track = self._tracks.get(key)
        if track is None:
            return None
        if track.locked_until <= now and now - track.last_failure > self.limits.forget_after_s:
            del self._tracks[key]
            return None
        self._tracks.move_to_end(key)
        return track

    def _add(self, key: tuple[str, str]) -> _Track:
        track = self._tracks[key] = _Track()
        while len(self._tracks) > self._max_tracked:
            self._tracks.popitem(last=False)
        return track


def _name(user: str) -> str:
    return user.strip().casefold()


def _keys(user: str, address: str | None) -> list[tuple[str, str]]:
    keys = [("user", _name(user))]
    if address:
        keys.append(("address", address))
    return keys
