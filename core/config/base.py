"""The base every settings section derives from: immutable, unknown keys rejected."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A frozen settings section; a typo in `tollgate.yaml` is an error, not a silently ignored key."""

    model_config = ConfigDict(frozen=True, extra="forbid")
