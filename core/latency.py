"""Latency percentiles from rollups: the bucket scheme, the incremental upsert and the queries.

Buckets are log-spaced: bucket `b` holds values in [GROWTH**b, GROWTH**(b+1)) milliseconds and is
reported as its geometric middle GROWTH**(b + 0.5). A percentile read from the rollups is therefore
within `RELATIVE_ERROR` (sqrt(1.1) - 1, about 4.9 %) of the exact nearest-rank percentile of the same
requests, for values between `MIN_MS` and `MAX_MS` (values outside are clamped into the end buckets).

Only requests that succeeded (status below 400, no error class) are counted: failures are fast or
time out, and would blur the latency of the answers users actually got. The model is the served model
(falling back to the requested one). Rows are written by `record_latencies` in the transaction that
inserts the traffic rows; queries read only `latency_rollup` (day rows for whole UTC days, hour rows
and then minute rows for the ragged edges), never the traffic table.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core.errors import TollgateError
from core.tables.rollups import ROLLUP_KEY, LatencyRollup

Metric = Literal["ttft", "latency"]
METRICS: dict[str, str] = {"ttft": "ttft_ms", "latency": "latency_ms"}
GROWTH = 1.1
MIN_MS = 0.01
MAX_MS = 3_600_000.0  # one hour
RELATIVE_ERROR = math.sqrt(GROWTH) - 1.0
DEFAULT_QUANTILES = (0.5, 0.95, 0.99)
SPANS = (1, 60, 1440)  # rollup periods in minutes: minute, hour, UTC day
GROUPS = {"model": "model", "prompt": "prompt_name", "segment": "segment"}

_LOG_GROWTH = math.log(GROWTH)
_MIN_BUCKET = math.floor(math.log(MIN_MS) / _LOG_GROWTH)
_MAX_BUCKET = math.floor(math.log(MAX_MS) / _LOG_GROWTH)
_STEP = re.compile(r"^\s*(\d+)\s*([mhd])\s*$")
_STEP_MINUTES = {"m": 1, "h": 60, "d": 1440}
_TABLE: sa.Table = LatencyRollup.__table__  # type: ignore[attr-defined]


class LatencyQueryError(TollgateError):
    """A percentile query was asked for something that cannot be answered (bad metric, step, group)."""


# -- the bucket scheme ---------------------------------------------------------------------------------


def bucket_of(value_ms: float) -> int:
    """The bucket holding `value_ms` (clamped to [MIN_MS, MAX_MS])."""
    if not value_ms > MIN_MS:  # also catches NaN
        return _MIN_BUCKET
    return min(math.floor(math.log(value_ms) / _LOG_GROWTH), _MAX_BUCKET)


def bucket_value(bucket: int) -> float:
    """The value a bucket stands for: its geometric middle, in milliseconds."""
    return float(GROWTH ** (bucket + 0.5))


def percentile_key(quantile: float) -> str:
    """`0.5` -> 'p50', `0.999` -> 'p99.9'."""
    return f"p{quantile * 100:g}"


def estimate_percentiles(
    counts: Mapping[int, int], quantiles: Sequence[float] = DEFAULT_QUANTILES
) -> dict[str, Any]:
    """Nearest-rank percentiles of a bucket histogram: {'count': n, 'p50': ms | None, ...}."""
    _check_quantiles(quantiles)
    total = sum(counts.values())
    result: dict[str, Any] = {"count": total}
    buckets = sorted(counts)
    for quantile in quantiles:
        result[percentile_key(quantile)] = _nearest_rank(counts, buckets, total, quantile)
    return result


def _nearest_rank(counts: Mapping[int, int], buckets: list[int], total: int, quantile: float) -> float | None:
    if total == 0:
        return None
    rank = max(1, math.ceil(round(quantile * total, 9)))  # round: 0.95 * 100 is 95.00000000000001
    seen = 0
    for bucket in buckets:
        seen += counts[bucket]
        if seen >= rank:
            return bucket_value(bucket)
    return bucket_value(buckets[-1])


# -- writing -------------------------------------------------------------------------------------------


def rollup_counts(rows: Iterable[Mapping[str, Any]]) -> Counter[tuple[Any, ...]]:
    """Count traffic rows per rollup key (`ROLLUP_KEY` order), at every resolution in `SPANS`."""
    counts: Counter[tuple[Any, ...]] = Counter()
    for row in rows:
        if row["status"] >= 400 or row.get("error_class"):
            continue
        minute = int(row["created_at"].timestamp()) // 60
        model = row.get("served_model") or row.get("requested_model") or ""
        prompt = row.get("prompt_name") or ""
        segment = row.get("segment") or ""
        for metric, column in METRICS.items():
            value = row.get(column)
            if value is None:
                continue
            bucket = bucket_of(value)
            for span in SPANS:
                counts[(span, metric, minute - minute % span, model, prompt, segment, bucket)] += 1
    return counts


def record_latencies(connection: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
    """Add `rows` (finalised traffic rows just inserted) to the rollups, in the caller's transaction.

    Only pass rows that were actually inserted: counting is additive, so a row counted twice stays so.
    """
    counts = rollup_counts(rows)
    if not counts:
        return
    # Sorted keys: concurrent writers take row locks in the same order, so they cannot deadlock.
    params = [dict(zip(ROLLUP_KEY, key, strict=True), count=counts[key]) for key in sorted(counts)]
    connection.execute(_upsert_statement(connection.dialect.name), params)


def _upsert_statement(dialect: str) -> sa.Executable:
    """INSERT ... ON CONFLICT (key) DO UPDATE SET count = count + excluded.count."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        postgresql = postgresql_insert(_TABLE)
        return postgresql.on_conflict_do_update(
            index_elements=list(ROLLUP_KEY), set_=_added(postgresql.excluded)
        )
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        sqlite = sqlite_insert(_TABLE)
        return sqlite.on_conflict_do_update(index_elements=list(ROLLUP_KEY), set_=_added(sqlite.excluded))
    raise LatencyQueryError(f"latency rollups need SQLite or PostgreSQL, not {dialect}")


def _added(excluded: Any) -> dict[str, Any]:
    return {"count": _TABLE.c.count + excluded.count}


# -- reading -------------------------------------------------------------------------------------------


def latency_percentiles(
    engine: Engine,
    metric: Metric,
    *,
    since: datetime,
    until: datetime,
    model: str | None = None,
    prompt: str | None = None,
    segment: str | None = None,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
) -> dict[str, Any]:
    """Percentiles of `metric` over [since, until), whole minutes: {'count': n, 'p50': ms | None, ...}.

    The minute holding `since` is included, the minute holding `until` is not unless `until` falls
    inside it. A filter left as None matches everything; '' matches requests without that dimension.
    """
    rows = _histograms(engine, metric, since, until, model, prompt, segment, group_by=(), step=None)
    return estimate_percentiles(rows.get((), {}), quantiles)


def latency_percentiles_over_time(
    engine: Engine,
    metric: Metric,
    *,
    since: datetime,
    until: datetime,
    step: str | timedelta = "1h",
    group_by: Sequence[str] = ("model",),
    model: str | None = None,
    prompt: str | None = None,
    segment: str | None = None,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
) -> list[dict[str, Any]]:
    """Percentiles of `metric` per time step and group, in time then group order.

    Steps ('1m', '15m', '1h', '1d' or a timedelta of whole minutes) are aligned to the Unix epoch (UTC),
    so '1d' means UTC days. `group_by` names any of 'model', 'prompt', 'segment'. Each row:
    {'start': datetime, <group>: value, ..., 'count': n, 'p50': ms, ...}; empty steps are left out.
    """
    minutes = _step_minutes(step)
    histograms = _histograms(engine, metric, since, until, model, prompt, segment, tuple(group_by), minutes)
    result = []
    for key in sorted(histograms):
        start, *groups = key
        row: dict[str, Any] = {"start": datetime.fromtimestamp(start * minutes * 60, UTC)}
        row.update(zip(group_by, groups, strict=True))
        row.update(estimate_percentiles(histograms[key], quantiles))
        result.append(row)
    return result


def _histograms(
    engine: Engine,
    metric: str,
    since: datetime,
    until: datetime,
    model: str | None,
    prompt: str | None,
    segment: str | None,
    group_by: tuple[str, ...],
    step: int | None,
) -> dict[tuple[Any, ...], Counter[int]]:
    """Bucket counts per (step index, *groups), or per () when `step` is None."""
    if metric not in METRICS:
        raise LatencyQueryError(f"unknown latency metric {metric!r}: use one of {', '.join(METRICS)}")
    unknown = [name for name in group_by if name not in GROUPS]
    if unknown:
        raise LatencyQueryError(f"cannot group latency by {unknown}: use any of {', '.join(GROUPS)}")
    table = _TABLE
    keys: list[sa.ColumnElement[Any]] = [] if step is None else [(table.c.period // step).label("step")]
    keys += [table.c[GROUPS[name]] for name in group_by]
    where = [table.c.metric == metric, _periods(_minute_of(since), _minute_after(until), step)]
    for column, value in (("model", model), ("prompt_name", prompt), ("segment", segment)):
        if value is not None:
            where.append(table.c[column] == value)
    query = (
        sa.select(*keys, table.c.bucket, sa.func.sum(table.c.count))
        .where(*where)
        .group_by(*keys, table.c.bucket)
    )
    histograms: dict[tuple[Any, ...], Counter[int]] = {}
    with engine.connect() as connection:
        for *key, bucket, count in connection.execute(query):
            histograms.setdefault(tuple(key), Counter())[bucket] += int(count)
    return histograms


def _periods(first: int, end: int, step: int | None) -> sa.ColumnElement[bool]:
    """Rows covering minutes [first, end) exactly once: the coarsest rows that fit, finer ones at the edges.

    A resolution is only usable when every step boundary is one of its period boundaries too.
    """
    spans = [span for span in SPANS if step is None or step % span == 0]
    return sa.or_(sa.false(), *_cover(first, end, spans))


def _cover(first: int, end: int, spans: list[int]) -> list[sa.ColumnElement[bool]]:
    if first >= end:
        return []
    table, span = _TABLE, spans[-1]
    whole_from, whole_to = -(-first // span) * span, end // span * span
    if span == 1:
        return [sa.and_(table.c.span_minutes == 1, table.c.period >= first, table.c.period < end)]
    if whole_from >= whole_to:
        return _cover(first, end, spans[:-1])
    middle = sa.and_(table.c.span_minutes == span, table.c.period >= whole_from, table.c.period < whole_to)
    return [middle, *_cover(first, whole_from, spans[:-1]), *_cover(whole_to, end, spans[:-1])]


def _step_minutes(step: str | timedelta) -> int:
    if isinstance(step, timedelta):
        seconds = step.total_seconds()
        if seconds < 60 or seconds % 60:
            raise LatencyQueryError(f"step {step} is not a whole number of minutes")
        return int(seconds // 60)
    match = _STEP.match(step)
    if match is None or int(match.group(1)) == 0:
        raise LatencyQueryError(f"step {step!r} is not like '1m', '15m', '1h' or '1d'")
    return int(match.group(1)) * _STEP_MINUTES[match.group(2)]


def _minute_of(moment: datetime) -> int:
    """The minute holding `moment`, in minutes since the epoch."""
    return math.floor(_timestamp(moment)) // 60


def _minute_after(moment: datetime) -> int:
    """The first minute that starts at or after `moment` (an exclusive end)."""
    return -(-math.ceil(_timestamp(moment)) // 60)


def _timestamp(moment: datetime) -> float:
    if moment.tzinfo is None:
        raise LatencyQueryError("latency queries need timezone-aware datetimes")
    return moment.timestamp()


def _check_quantiles(quantiles: Sequence[float]) -> None:
    bad = [quantile for quantile in quantiles if not 0.0 < quantile <= 1.0]
    if bad:
        raise LatencyQueryError(f"quantiles must be in (0, 1]: {bad}")
