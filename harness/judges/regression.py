"""From traffic to tests: logged (redacted) requests, with reviewers' labels, written as a regression dataset.

Each case replays the logged request through the `llm` fixture and keeps the logged answer as a reference:

    {"id": "t-<traffic id>", "inputs": {"request": {...}, "input": "user text"},
     "expected": {"output": "logged answer", "label": "good"}, "tags": ["traffic", "label:good", ...]}

`label` is the newest reviewer's label (`good`/`bad`) from the review queue, or null when nobody reviewed it.
Filters are `key=value` pairs: model, prompt, feature, user, label (good, bad, reviewed, unreviewed).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.reviews import REVIEW_TABLE
from harness.errors import HarnessError
from harness.judges.traffic import TRAFFIC, exchange_from_row, iter_traffic, not_judge_traffic

_COLUMNS = {"model": TRAFFIC.c.requested_model, "prompt": TRAFFIC.c.prompt_name, "feature": TRAFFIC.c.feature,
            "user": TRAFFIC.c.user}
LABEL_FILTERS = ("good", "bad", "reviewed", "unreviewed")


@dataclass(frozen=True, slots=True)
class TrafficFilter:
    """Which logged records become cases."""

    columns: tuple[tuple[str, str], ...] = ()
    label: str | None = None

    @classmethod
    def parse(cls, pairs: Iterable[str]) -> TrafficFilter:
        columns, label = [], None
        for pair in pairs:
            key, sep, value = (part.strip() for part in pair.partition("="))
            if not sep or not value:
                raise HarnessError(f"filter {pair!r} is not key=value")
            if key == "label":
                if value not in LABEL_FILTERS:
                    raise HarnessError(f"label filter must be one of {', '.join(LABEL_FILTERS)}, got {value!r}")
                label = value
            elif key in _COLUMNS:
                columns.append((key, value))
            else:
                raise HarnessError(f"unknown filter {key!r}; use {', '.join([*_COLUMNS, 'label'])}")
        return cls(tuple(columns), label)

    def clauses(self) -> list[Any]:
        return [_COLUMNS[key] == value for key, value in self.columns]

    def keeps(self, label: str | None) -> bool:
        if self.label is None:
            return True
        if self.label == "reviewed":
            return label is not None
        if self.label == "unreviewed":
            return label is None
        return label == self.label


def reviewer_labels(engine: Engine, traffic_ids: list[str]) -> dict[str, str]:
    """The newest reviewer's label per traffic id (ids without a labelled review item are left out)."""
    labels: dict[str, str] = {}
    for start in range(0, len(traffic_ids), 500):
        query = (sa.select(REVIEW_TABLE.c.traffic_id, REVIEW_TABLE.c.label)
                 .where(REVIEW_TABLE.c.traffic_id.in_(traffic_ids[start:start + 500]),
                        REVIEW_TABLE.c.label.is_not(None))
                 .order_by(REVIEW_TABLE.c.reviewed_at, REVIEW_TABLE.c.id))
        with engine.connect() as connection:
            for traffic_id, label in connection.execute(query):
                labels[traffic_id] = label  # ordered oldest first: the newest wins
    return labels


def case_from_row(row: dict[str, Any], label: str | None) -> dict[str, Any]:
    exchange = exchange_from_row(row)
    request = {key: value for key, value in exchange.request.items() if key not in ("stream", "stream_options")}
    tags = ["traffic", f"label:{label}" if label else "unreviewed"]
    tags += [f"{name}:{value}" for name, value in (("model", exchange.model), ("prompt", exchange.prompt_name),
                                                    ("feature", exchange.feature)) if value]
    return {"id": f"t-{exchange.id}", "inputs": {"request": request, "input": exchange.input},
            "expected": {"output": exchange.output, "label": label}, "tags": tags}


def dataset_from_traffic(engine: Engine, out: str | Path, *, filters: TrafficFilter, since: timedelta | None = None,
                         limit: int | None = None, judge_feature: str = "judge") -> int:
    """Write the matching records to `out` (JSONL, the harness's dataset format); returns the number of cases."""
    target = Path(out)
    if target.suffix != ".jsonl":
        raise HarnessError(f"{target}: the dataset must be a .jsonl file")
    where = [not_judge_traffic(judge_feature), *filters.clauses()]
    lines: list[bytes] = []
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        labels = reviewer_labels(engine, [row["id"] for row in batch])
        for row in batch:
            label = labels.get(row["id"])
            if filters.keeps(label) and (limit is None or len(lines) < limit):
                lines.append(orjson.dumps(case_from_row(row, label)))
        batch.clear()

    for row in iter_traffic(engine, since=since, where=where):
        batch.append(row)
        if len(batch) >= 500:
            flush()
    flush()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"\n".join(lines) + (b"\n" if lines else b""))
    except OSError as exc:
        raise HarnessError(f"{target}: cannot write ({exc.strerror})") from exc
    return len(lines)
