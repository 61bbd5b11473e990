"""Cache fixtures: a reachable Redis (or a skip/fail with the reason), and unique request texts."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import REDIS_URL, skip_or_fail


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The test Redis database, reachable or the test is skipped (failed under TOLLGATE_REQUIRE_SERVICES=1)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=1)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        skip_or_fail(f"Redis at {REDIS_URL} is not reachable: {exc}")
    finally:
        client.close()
    yield REDIS_URL


@pytest.fixture
def nonce() -> str:
    """Text unique to one test, so entries left in a shared Redis by another run never answer it."""
    return uuid.uuid4().hex[:8]
