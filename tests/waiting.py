"""Waiting for something to have happened, instead of sleeping and hoping it has.

Tests synchronise on conditions: `wait_until(lambda: len(rows) == 3, what="three rows")` polls until the
condition holds and fails with `what` after a generous deadline. The deadline only bounds a broken run;
a passing run never waits longer than the condition takes, however loaded the machine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 30.0
POLL_S = 0.01


def wait_until(
    condition: Callable[[], T], timeout: float = DEFAULT_TIMEOUT_S, what: str = "the condition"
) -> T:
    """Poll `condition` until it returns something truthy and return that; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(POLL_S)


async def wait_until_async(
    condition: Callable[[], T], timeout: float = DEFAULT_TIMEOUT_S, what: str = "the condition"
) -> T:
    """`wait_until` for event-loop code: polls without blocking the loop."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(POLL_S)
