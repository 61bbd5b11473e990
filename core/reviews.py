"""The human review queue: flag an output, list what waits, record a reviewer's label.

The sidecar's traffic writer, online evaluation and the dashboard all change the queue through these
functions, so a label means the same thing wherever it was given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core.errors import TollgateError
from core.tables import ReviewItem
from core.tables.common import utc_now

REVIEW_TABLE: sa.Table = ReviewItem.__table__  # type: ignore[attr-defined]
Label = Literal["good", "bad"]
LABELS: tuple[str, ...] = ("good", "bad")
_INPUT_CHARS = 8_000


class ReviewError(TollgateError):
    """A review action that cannot be applied (unknown item, bad label)."""


def queue_reviews(connection: Connection, rows: Iterable[Mapping[str, Any]]) -> int:
    """Queue one review item per traffic row flagged with `review_reason` (`source: reason`); in the caller's
    transaction, so a replayed batch (rows already stored are not passed here) never queues twice."""
    items = [_item_from_traffic(row) for row in rows if row.get("review_reason")]
    if items:
        connection.execute(sa.insert(REVIEW_TABLE), items)
    return len(items)


def _item_from_traffic(row: Mapping[str, Any]) -> dict[str, Any]:
    source, reason = split_review_reason(str(row["review_reason"]))
    return {
        "created_at": row.get("created_at") or utc_now(),
        "source": source,
        "reason": reason,
        "traffic_id": row.get("id"),
        "request_id": row.get("request_id"),
        "model": row.get("served_model") or row.get("requested_model"),
        "prompt_name": row.get("prompt_name"),
        "input_text": (row.get("request_body") or "")[:_INPUT_CHARS] or None,
        "output_text": row.get("response_body"),
        "score": row.get("confidence"),
        "details": row.get("guard_events"),
        "status": "open",
    }


def split_review_reason(text: str) -> tuple[str, str]:
    """`guard: pii in output` -> (`guard`, `pii in output`); no prefix -> (`sidecar`, text)."""
    source, sep, reason = text.partition(": ")
    if sep and source and " " not in source and len(source) <= 32:
        return source, reason[:500]
    return "sidecar", text[:500]


def add_review_item(
    engine: Engine,
    *,
    source: str,
    reason: str,
    input_text: str | None = None,
    output_text: str | None = None,
    traffic_id: str | None = None,
    request_id: str | None = None,
    model: str | None = None,
    prompt_name: str | None = None,
    score: float | None = None,
    details: Mapping[str, Any] | Sequence[Any] | None = None,
) -> int:
    """Queue one item for review (texts must already be redacted); returns its id."""
    values = {
        "created_at": utc_now(),
        "source": source[:32],
        "reason": reason[:500],
        "traffic_id": traffic_id,
        "request_id": request_id,
        "model": model,
        "prompt_name": prompt_name,
        "input_text": input_text,
        "output_text": output_text,
        "score": score,
        "details": orjson.dumps(details).decode() if details is not None else None,
        "status": "open",
    }
    with engine.begin() as connection:
        return int(connection.execute(sa.insert(REVIEW_TABLE).returning(REVIEW_TABLE.c.id), values).scalar_one())


def list_review_items(
    engine: Engine, *, status: str | None = "open", source: str | None = None, limit: int = 100, offset: int = 0
) -> list[ReviewItem]:
    """Items newest first, filtered by status and source."""
    query = sa.select(REVIEW_TABLE).order_by(REVIEW_TABLE.c.created_at.desc(), REVIEW_TABLE.c.id.desc())
    if status is not None:
        query = query.where(REVIEW_TABLE.c.status == status)
    if source is not None:
        query = query.where(REVIEW_TABLE.c.source == source)
    with engine.connect() as connection:
        rows = connection.execute(query.limit(limit).offset(offset)).mappings().all()
    return [ReviewItem.model_validate(dict(row)) for row in rows]


def label_review_item(engine: Engine, item_id: int, label: str, *, reviewer: str, note: str | None = None) -> ReviewItem:
    """Record a reviewer's verdict (`good` or `bad`) on an item; relabelling overwrites and keeps the newest."""
    if label not in LABELS:
        raise ReviewError(f"label must be one of {', '.join(LABELS)}, got {label!r}")
    reviewed_at: datetime = utc_now()
    with engine.begin() as connection:
        updated = connection.execute(
            sa.update(REVIEW_TABLE)
            .where(REVIEW_TABLE.c.id == item_id)
            .values(status="labelled", label=label, note=note, reviewer=reviewer, reviewed_at=reviewed_at)
        ).rowcount
        if not updated:
            raise ReviewError(f"no review item with id {item_id}")
        row = connection.execute(sa.select(REVIEW_TABLE).where(REVIEW_TABLE.c.id == item_id)).mappings().one()
    return ReviewItem.model_validate(dict(row))
