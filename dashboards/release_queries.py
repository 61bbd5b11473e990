"""Reads for the release-gate page: which subjects and versions exist, over the runs and release tables.

Label state, gate decisions and the audit log come from `core.releases` itself; these are only the lists
the page offers to choose from.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.prompts import PromptError, PromptRegistry
from core.tables import PromptSource, PromptVersion, ReleaseLabel

VERSIONS: sa.Table = PromptVersion.__table__  # type: ignore[attr-defined]
SOURCES: sa.Table = PromptSource.__table__  # type: ignore[attr-defined]
LABELS: sa.Table = ReleaseLabel.__table__  # type: ignore[attr-defined]


def subjects(engine: Engine, registry: PromptRegistry | None = None) -> list[str]:
    """Every prompt seen in a run, stored for release or labelled, and every prompt file on disk."""
    query = sa.union(
        sa.select(VERSIONS.c.name.label("name")),
        sa.select(SOURCES.c.name.label("name")),
        sa.select(LABELS.c.subject.label("name")),
    )
    with engine.connect() as connection:
        names = {str(name) for name in connection.execute(query).scalars()}
    if registry is not None:
        try:
            names.update(registry.names())
        except PromptError:
            pass  # no prompts folder where the dashboard runs: the database still lists what ran
    return sorted(names)


def versions(engine: Engine, subject: str) -> list[dict[str, Any]]:
    """The versions of one prompt, newest first: those that ran in a suite and those stored for release."""
    seen = sa.select(VERSIONS.c.version, VERSIONS.c.first_seen_at.label("first_seen_at")).where(
        VERSIONS.c.name == subject
    )
    stored = sa.select(SOURCES.c.version, sa.null().label("first_seen_at")).where(SOURCES.c.name == subject)
    union = sa.union_all(seen, stored).subquery()
    query = (
        sa.select(union.c.version, sa.func.min(union.c.first_seen_at).label("first_seen_at"))
        .group_by(union.c.version)
        .order_by(sa.func.min(union.c.first_seen_at).desc(), union.c.version)
    )
    with engine.connect() as connection:
        return [dict(row) for row in connection.execute(query).mappings()]
