"""Sidecar fixtures: the fake upstream and a sidecar on real loopback HTTP."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings
from sidecar.fake_upstream import FakeBehaviour, FakeUpstreamThread, SseStyle, start_fake_upstream_thread
from sidecar.testing import ThreadedSidecar
from sidecar.traffic.record import RawTraffic


class TrafficCollector:
    """Stands in for the traffic log where a test inspects the raw records the request path produced."""

    def __init__(self, _settings: Settings | None = None) -> None:
        self.records: list[RawTraffic] = []
        self._lock = threading.Lock()
        self.closed = False

    def start(self) -> None:
        return None

    @property
    def stats(self) -> TrafficCollector:
        return self

    def as_dict(self) -> dict[str, int]:
        return {"submitted": len(self.records)}

    def admits(self) -> bool:
        return True

    def submit(self, record: RawTraffic) -> None:
        with self._lock:
            self.records.append(record)

    async def aclose(self) -> None:
        self.closed = True

    def by_id(self, request_id: str) -> RawTraffic:
        matches = [record for record in self.records if record.request_id == request_id]
        assert len(matches) == 1, f"expected one record for {request_id}, got {len(matches)}"
        return matches[0]


EVERY_SSE_STYLE = pytest.mark.parametrize("sse_style", [style.value for style in SseStyle])
"""Run a streaming test against the fake upstream in every SSE framing (it overrides the `sse_style` fixture)."""


@pytest.fixture
def sse_style() -> str:
    """The framing of the fake upstream's streams; streaming tests parametrize it with `EVERY_SSE_STYLE`."""
    return SseStyle.CANONICAL.value


@pytest.fixture
def fake(sse_style: str) -> Iterator[FakeUpstreamThread]:
    with start_fake_upstream_thread(FakeBehaviour(sse_style=SseStyle(sse_style))) as handle:
        yield handle


@pytest.fixture
def fake2() -> Iterator[FakeUpstreamThread]:
    with start_fake_upstream_thread(FakeBehaviour()) as handle:
        yield handle


def sidecar_settings(tmp_path: Path, models: dict[str, Any], **overrides: Any) -> Settings:
    sidecar = {"port": 0, "retry_backoff_s": 0.01, **overrides.pop("sidecar", {})}
    return Settings(
        data_dir=tmp_path / ".tollgate",
        models=models,
        embedded={"enabled": "never"},
        sidecar=sidecar,
        **overrides,
    )


SidecarFactory = Callable[..., tuple[ThreadedSidecar, TrafficCollector]]


@pytest.fixture
def make_sidecar(tmp_path: Path) -> Iterator[SidecarFactory]:
    """Start sidecars with the given models; records go to a collector unless `real_traffic=True`.

    `stages` replaces the pipeline builder: a callable taking the runtime and returning the stages.
    """
    running: list[ThreadedSidecar] = []

    def factory(models: dict[str, Any], *, real_traffic: bool = False, stages: Any = None, **overrides: Any):
        settings = sidecar_settings(tmp_path, models, **overrides)
        collector = TrafficCollector()
        kwargs: dict[str, Any] = {} if real_traffic else {"traffic_factory": lambda _s: collector}
        if stages is not None:
            kwargs["stage_factory"] = stages
        sidecar = ThreadedSidecar(settings, **kwargs).start()
        running.append(sidecar)
        return sidecar, collector

    yield factory
    for sidecar in running:
        sidecar.stop()


@pytest.fixture
def sidecar(make_sidecar: SidecarFactory, fake: FakeUpstreamThread) -> tuple[ThreadedSidecar, TrafficCollector]:
    """A sidecar whose model `fake-model` is served by the fake upstream."""
    return make_sidecar({"fake-model": {"deployments": [{"base_url": fake.url}]}})


@pytest.fixture
def db(tmp_path):
    """The SQLite database a sidecar made by `make_sidecar` writes (under `tmp_path/.tollgate`)."""
    from core.database import open_database

    engine = open_database(f"sqlite:///{tmp_path / '.tollgate' / 'tollgate.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def redis_url() -> str:
    """The shared Redis server's test database; skipped (or failed under CI) when it does not answer."""
    import redis

    from tests.conftest import REDIS_URL, skip_or_fail

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        skip_or_fail(f"Redis at {REDIS_URL} is not reachable: {exc}")
    finally:
        client.close()
    return REDIS_URL
