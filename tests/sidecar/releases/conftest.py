"""Fixtures for release tests over loopback: a shared database, a prompt directory, release-enabled sidecars."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from core.database import open_database
from core.prompts import PromptRegistry
from core.releases import promote
from sidecar.fake_upstream import FakeBehaviour, FakeUpstreamThread, start_fake_upstream_thread
from tests.core.releases.conftest import PROMPT
from tests.sidecar.conftest import SidecarFactory

ADMIN_ENV = "TOLLGATE_TEST_RELEASES_ADMIN_KEY"
ADMIN_KEY = "release-admin-secret"


class Releases:
    """The shared database and prompt directory, and the core calls tests make against them."""

    def __init__(self, engine: Engine, root: Path, url: str) -> None:
        self.engine = engine
        self.root = root
        self.url = url
        self.registry = PromptRegistry(root)

    def write(self, system: str) -> str:
        (self.root / "greet.prompt").write_text(PROMPT.format(system=system))
        return self.registry.get("greet").version

    def release(self, system: str) -> str:
        """Write a new version and force it into production (these tests are about serving, not the gate)."""
        version = self.write(system)
        promote(self.engine, "greet", version=version, registry=self.registry, force=True, reason="test")
        return version


@pytest.fixture
def releases(sqlite_url: str, tmp_path: Path) -> Iterator[Releases]:
    engine = open_database(sqlite_url)
    root = tmp_path / "prompts"
    root.mkdir()
    try:
        yield Releases(engine, root, sqlite_url)
    finally:
        engine.dispose()


@pytest.fixture
def shadow_upstream() -> Iterator[FakeUpstreamThread]:
    with start_fake_upstream_thread(FakeBehaviour(reply="shadow candidate answer")) as handle:
        yield handle


ReleaseSidecarFactory = Callable[..., Any]


@pytest.fixture
def release_sidecar(make_sidecar: SidecarFactory, releases: Releases, fake: FakeUpstreamThread,
                    monkeypatch: pytest.MonkeyPatch) -> ReleaseSidecarFactory:
    """A sidecar with releases on, reading the shared database; `extra_models` adds upstreams."""
    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)

    def factory(extra_models: dict[str, Any] | None = None, **releases_settings: Any):
        models = {"fake-model": {"deployments": [{"base_url": fake.url}]}, **(extra_models or {})}
        settings = {"enabled": True, "refresh_interval_s": 0.05, "prompts_dir": str(releases.root),
                    **releases_settings}
        return make_sidecar(models, database_url=releases.url, releases=settings,
                            access={"admin_key_env": ADMIN_ENV})

    return factory
