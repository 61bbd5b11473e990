"""Fixtures for the release tests: a migrated database, a prompt directory and suite runs as the harness stores them."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.database import open_database
from core.prompts import PromptRegistry
from core.tables import Run

PROMPT = """---
name: greet
model: fake-model
parameters: {{temperature: 0, max_tokens: 20}}
---
[SYSTEM]
{system}
[INSTRUCTION]
Say hello to {{{{ name }}}} in {{{{ language | default("English") }}}}.
"""


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = open_database(db_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    engine = open_database(sqlite_url)
    try:
        yield engine
    finally:
        engine.dispose()


class PromptDir:
    """A prompt directory whose `greet.prompt` can be rewritten (each text is a new content version)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.registry = PromptRegistry(root)

    def write(self, system: str = "You are polite.") -> str:
        path = self.root / "greet.prompt"
        path.write_text(PROMPT.format(system=system))
        return self.registry.get("greet").version


@pytest.fixture
def prompts(tmp_path: Path) -> PromptDir:
    root = tmp_path / "prompts"
    root.mkdir()
    return PromptDir(root)


RunFactory = Callable[..., str]


@pytest.fixture
def add_run(engine: Engine) -> RunFactory:
    """Store a finished suite run the way the harness records one; returns its id."""
    return run_factory(engine)


@pytest.fixture
def add_run_sqlite(sqlite_engine: Engine) -> RunFactory:
    """`add_run` on the SQLite database only (for tests that go through the CLI)."""
    return run_factory(sqlite_engine)


def run_factory(engine: Engine) -> RunFactory:
    clock = [datetime.now(UTC) - timedelta(hours=1)]

    def factory(prompt_versions: dict[str, str], *, exit_status: int = 0, suites: dict[str, Any] | None = None,
                models: dict[str, int] | None = None, status: str = "finished", **summary: Any) -> str:
        clock[0] += timedelta(seconds=1)
        suite = {"gate": {}, "prompt": next(iter(prompt_versions), None), "score": 0.9, "cases": 10,
                 "results": 10, "cost_usd": None, "cost_unknown": 10, "latency_p95_ms": 120.0, **summary}
        run = Run(id=uuid.uuid4().hex, harness_version="test", status=status, started_at=clock[0],
                  prompt_versions=prompt_versions, suites=suites if suites is not None else {"greeting": suite},
                  models=models or {"fake-model": 10}, exit_status=exit_status)
        run_id = run.id
        with Session(engine) as session:
            session.add(run)
            session.commit()
        return run_id

    return factory
