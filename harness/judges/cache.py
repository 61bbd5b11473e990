"""The judge cache: verdicts stored in the database, so unchanged outputs are never judged twice.

The key is the sha256 of the metric, its rubric hash, the judge (model and parameters), the sample index,
and the input, output, reference and context judged. Changing any of them misses the cache; re-running a
suite whose outputs did not change makes no judge call at all.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from core.tables import JudgeCacheEntry, utc_now
from harness.judges.metrics import JudgeItem, MetricSpec

_TABLE: sa.Table = JudgeCacheEntry.__table__  # type: ignore[attr-defined]


def cache_key(spec: MetricSpec, judge_id: str, sample: int, item: JudgeItem) -> str:
    payload = orjson.dumps([spec.label, spec.rubric_hash, judge_id, sample, *item.key_data()])
    return hashlib.sha256(payload).hexdigest()


class JudgeCache:
    """Verdicts by key, read through a small in-memory layer (a suite asks for the same key once per repeat)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._memory: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[float, str | None] | None:
        with self._lock:
            found = self._memory.get(key)
        if found is not None:
            return found
        query = sa.select(_TABLE.c.value, _TABLE.c.reason).where(_TABLE.c.key == key)
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        if row is None:
            return None
        with self._lock:
            self._memory[key] = (float(row[0]), row[1])
        return float(row[0]), row[1]

    def put(self, key: str, *, metric: str, rubric_hash: str, judge: str, value: float, reason: str | None) -> None:
        """Store a verdict; a key already stored (a concurrent run judged it too) is left as it is."""
        values: dict[str, Any] = {"key": key, "created_at": utc_now(), "metric": metric, "rubric_hash": rubric_hash,
                                  "judge": judge, "value": value, "reason": reason}
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(_TABLE).values(values).on_conflict_do_nothing(index_elements=["key"])
        with self.engine.begin() as connection:
            connection.execute(statement)
        with self._lock:
            self._memory[key] = (value, reason)

    def clear(self, metric: str | None = None) -> int:
        """Forget stored verdicts (of one metric, or all); returns how many were removed."""
        statement = sa.delete(_TABLE)
        if metric is not None:
            statement = statement.where(_TABLE.c.metric == metric)
        with self.engine.begin() as connection:
            removed = connection.execute(statement).rowcount
        with self._lock:
            self._memory.clear()
        return int(removed or 0)
