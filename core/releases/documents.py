"""Release results as JSON-ready data, for the CLI's `--json` and the admin API."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any


def as_document(value: Any) -> Any:
    """Dataclasses (nested), dicts, lists and datetimes turned into plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: as_document(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): as_document(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_document(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value
