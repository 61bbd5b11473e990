"""Latency rollups: sparse log-spaced histograms of TTFT and total latency per minute, hour and day.

One row counts the requests of one period whose `metric` fell in one histogram bucket, for one
(model, prompt, segment). Rows are upserted (`count = count + excluded.count`) in the same transaction
that inserts the traffic rows they summarise, so percentiles never scan the traffic table.
Periods are integers (minutes since the Unix epoch, UTC) so that grouping by any step is plain integer
arithmetic on SQLite and PostgreSQL alike. All resolutions live in one table: `span_minutes` is 1, 60
or 1440; a query reads the coarsest rows that fit its range and only the ragged edges from finer ones.
Missing dimensions are stored as '' (NULLs would defeat the key). The key is the primary key, and on
SQLite the table is WITHOUT ROWID, so a range read finds the counts in the key's own B-tree.
"""

from __future__ import annotations

from sqlmodel import Field, SQLModel

ROLLUP_KEY = ("span_minutes", "metric", "period", "model", "prompt_name", "segment", "bucket")


class LatencyRollup(SQLModel, table=True):
    """How many requests of one period landed in one latency bucket, for one model/prompt/segment."""

    __tablename__ = "latency_rollup"
    __table_args__ = {"sqlite_with_rowid": False}

    span_minutes: int = Field(primary_key=True, description="1, 60 or 1440: minute, hour or day rows")
    metric: str = Field(primary_key=True, max_length=16, description="'ttft' or 'latency'")
    period: int = Field(
        primary_key=True, description="start of the period, in minutes since the Unix epoch (UTC)"
    )
    model: str = Field(default="", primary_key=True, max_length=200)
    prompt_name: str = Field(default="", primary_key=True, max_length=200)
    segment: str = Field(default="", primary_key=True, max_length=200)
    bucket: int = Field(primary_key=True, description="histogram bucket index, see core.latency")
    count: int
