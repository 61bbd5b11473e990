"""Cost rollups: requests, tokens and USD per hour and per UTC day, by model, user, feature and key.

`record_costs` adds finalised traffic rows to the rollups in the transaction that inserts them (only rows
actually inserted, so a replayed batch never counts twice). The queries read only `cost_rollup`: whole UTC
days from day rows, the ragged edges from hour rows; nothing scans the traffic table.

A row whose price is unknown adds its requests and tokens but no USD, and counts in `unpriced`, so missing
prices show up as such instead of as free calls. Estimated token counts (a stream without usage) count in
`estimated`. A cache hit counts as a request at no cost.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core.errors import TollgateError
from core.tables.access import COST_ROLLUP_KEY, CostRollup

Dimension = Literal["model", "user", "feature", "key"]
DIMENSIONS: tuple[str, ...] = ("model", "user", "feature", "key")
SPANS = {"hour": 3600, "day": 86400}
CACHE_HITS = frozenset({"hit", "semantic"})
_SUMS = ("requests", "tokens_in", "tokens_out", "cost_usd", "estimated", "unpriced")
_TABLE: sa.Table = CostRollup.__table__  # type: ignore[attr-defined]


class CostQueryError(TollgateError):
    """A cost query named an unknown dimension or an empty range."""


# -- writing -------------------------------------------------------------------------------------------


def row_dimensions(row: Mapping[str, Any]) -> dict[str, str]:
    """The value of each dimension for one traffic row ('' when missing)."""
    return {
        "model": row.get("served_model") or row.get("requested_model") or "",
        "user": row.get("user") or "",
        "feature": row.get("feature") or "",
        "key": row.get("key_id") or "",
    }


def cost_sums(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[Any, ...], list[float]]:
    """Sums per rollup key (`COST_ROLLUP_KEY` order) for every span and dimension, in `_SUMS` order."""
    sums: dict[tuple[Any, ...], list[float]] = {}
    for row in rows:
        epoch = int(row["created_at"].timestamp())
        # A cache hit was answered without an upstream call: it costs nothing, whatever its tokens were worth.
        cost = 0.0 if row.get("cache_status") in CACHE_HITS else row.get("cost_usd")
        added = (
            1,
            row.get("tokens_in") or 0,
            row.get("tokens_out") or 0,
            cost or 0.0,
            1 if row.get("usage_estimated") else 0,
            1 if cost is None and row.get("tokens_in") is not None else 0,
        )
        for span, seconds in SPANS.items():
            period = epoch // seconds
            for dimension, value in row_dimensions(row).items():
                totals = sums.setdefault((span, period, dimension, value), [0, 0, 0, 0.0, 0, 0])
                for index, amount in enumerate(added):
                    totals[index] += amount
    return sums


def record_costs(connection: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
    """Add `rows` (traffic rows just inserted) to the cost rollups, in the caller's transaction."""
    sums = cost_sums(rows)
    if not sums:
        return
    # Sorted keys: concurrent writers lock rows in the same order, so they cannot deadlock.
    params = [
        {**dict(zip(COST_ROLLUP_KEY, key, strict=True)), **dict(zip(_SUMS, sums[key], strict=True))}
        for key in sorted(sums)
    ]
    connection.execute(_upsert_statement(connection.dialect.name), params)


def _upsert_statement(dialect: str) -> sa.Executable:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        postgresql = postgresql_insert(_TABLE)
        return postgresql.on_conflict_do_update(index_elements=list(COST_ROLLUP_KEY), set_=_added(postgresql.excluded))
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        sqlite = sqlite_insert(_TABLE)
        return sqlite.on_conflict_do_update(index_elements=list(COST_ROLLUP_KEY), set_=_added(sqlite.excluded))
    raise CostQueryError(f"cost rollups need SQLite or PostgreSQL, not {dialect}")


def _added(excluded: Any) -> dict[str, Any]:
    return {name: _TABLE.c[name] + excluded[name] for name in _SUMS}


# -- reading -------------------------------------------------------------------------------------------


def cost_by(
    engine: Engine | Connection, dimension: str, since: datetime, until: datetime, *, value: str | None = None
) -> list[dict[str, Any]]:
    """Totals per value of `dimension` over [since, until) in whole hours, most expensive first.

    Each row: {dimension: value, 'requests', 'tokens_in', 'tokens_out', 'cost_usd', 'estimated', 'unpriced'}.
    The hour holding `since` is included; the hour holding `until` only when `until` falls inside it.
    """
    _check_dimension(dimension)
    table = _TABLE
    where = [table.c.dimension == dimension, _covering(since, until)]
    if value is not None:
        where.append(table.c.value == value)
    query = (
        sa.select(table.c.value, *[sa.func.sum(table.c[name]) for name in _SUMS]).where(*where).group_by(table.c.value)
    )
    result = [_totals({dimension: found}, sums) for found, *sums in _execute(engine, query)]
    return sorted(result, key=lambda row: (-row["cost_usd"], row[dimension]))


def cost_over_time(
    engine: Engine | Connection,
    dimension: str,
    since: datetime,
    until: datetime,
    *,
    step: Literal["hour", "day"] = "day",
    value: str | None = None,
) -> list[dict[str, Any]]:
    """Totals per hour or UTC day and per value of `dimension`, in time then value order (empty steps left out)."""
    _check_dimension(dimension)
    if step not in SPANS:
        raise CostQueryError(f"step must be 'hour' or 'day', not {step!r}")
    table = _TABLE
    seconds = SPANS[step]
    first, end = _hour_of(since), _hour_after(until)
    if step == "day":
        first, end = first // 24, -(-end // 24)
    where = [table.c.dimension == dimension, table.c.span == step, table.c.period >= first, table.c.period < end]
    if value is not None:
        where.append(table.c.value == value)
    query = sa.select(table.c.period, table.c.value, *[table.c[name] for name in _SUMS]).where(*where)
    rows = [
        _totals({"start": datetime.fromtimestamp(period * seconds, UTC), dimension: found}, sums)
        for period, found, *sums in _execute(engine, query)
    ]
    return sorted(rows, key=lambda row: (row["start"], row[dimension]))


def spent_usd(engine: Engine | Connection, dimension: str, value: str, since: datetime, until: datetime) -> float:
    """USD spent by one key, user, feature or model over [since, until) (whole hours)."""
    rows = cost_by(engine, dimension, since, until, value=value)
    return float(rows[0]["cost_usd"]) if rows else 0.0


def hourly_series(
    engine: Engine | Connection, dimension: str, metric: str, first_hour: int, end_hour: int
) -> dict[str, dict[int, float]]:
    """`metric` ('cost_usd' or 'requests') per value and hour index over [first_hour, end_hour)."""
    table = _TABLE
    query = sa.select(table.c.value, table.c.period, table.c[metric]).where(
        table.c.span == "hour", table.c.dimension == dimension, table.c.period >= first_hour, table.c.period < end_hour
    )
    series: dict[str, dict[int, float]] = {}
    for value, period, amount in _execute(engine, query):
        series.setdefault(value, {})[int(period)] = float(amount)
    return series


def _covering(since: datetime, until: datetime) -> sa.ColumnElement[bool]:
    """Rows covering hours [first, end) exactly once: day rows for whole UTC days, hour rows at the edges."""
    first, end = _hour_of(since), _hour_after(until)
    if first >= end:
        return sa.false()
    table = _TABLE
    day_from, day_to = -(-first // 24), end // 24
    if day_from >= day_to:
        return sa.and_(table.c.span == "hour", table.c.period >= first, table.c.period < end)
    return sa.or_(
        sa.and_(table.c.span == "day", table.c.period >= day_from, table.c.period < day_to),
        sa.and_(table.c.span == "hour", table.c.period >= first, table.c.period < day_from * 24),
        sa.and_(table.c.span == "hour", table.c.period >= day_to * 24, table.c.period < end),
    )


def _execute(engine: Engine | Connection, query: sa.Select[Any]) -> list[Any]:
    if isinstance(engine, Connection):
        return list(engine.execute(query))
    with engine.connect() as connection:
        return list(connection.execute(query))


def _totals(head: dict[str, Any], sums: Iterable[Any]) -> dict[str, Any]:
    row = dict(head)
    for name, amount in zip(_SUMS, sums, strict=True):
        row[name] = float(amount or 0.0) if name == "cost_usd" else int(amount or 0)
    return row


def _check_dimension(dimension: str) -> None:
    if dimension not in DIMENSIONS:
        raise CostQueryError(f"cannot group costs by {dimension!r}: use one of {', '.join(DIMENSIONS)}")


def hour_index(moment: datetime) -> int:
    """Hours since the Unix epoch (UTC) of the hour holding `moment`."""
    return int(_aware(moment).timestamp()) // 3600


def _hour_of(moment: datetime) -> int:
    return hour_index(moment)


def _hour_after(moment: datetime) -> int:
    """The first hour not covered by a range ending at `moment` (exclusive, rounded up)."""
    seconds = _aware(moment).timestamp()
    return int(-(-seconds // 3600))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def day_start(moment: datetime) -> datetime:
    """Midnight UTC of the day holding `moment`."""
    moment = _aware(moment).astimezone(UTC)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def month_start(moment: datetime) -> datetime:
    """Midnight UTC of the first day of the month holding `moment`."""
    return day_start(moment).replace(day=1)


def next_month(moment: datetime) -> datetime:
    """Midnight UTC of the first day of the next month."""
    start = month_start(moment)
    return (start + timedelta(days=32)).replace(day=1)
