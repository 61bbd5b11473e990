"""Latency rollups: sparse log-spaced histograms of TTFT and total latency, per minute and per hour.

One row counts the requests of one period whose `metric` fell in one histogram bucket, for one
(model, prompt, segment). Rows are upserted (`count = count + excluded.count`) in the same transaction
that inserts the traffic rows they summarise, so percentiles never scan the traffic table.
Periods are integers (minutes since the Unix epoch, UTC) so that grouping by any step is plain integer
arithmetic on SQLite and PostgreSQL alike. Both resolutions live in one table: `span_minutes` is 1 for
minute rows and 60 for hour rows; queries over long ranges read the hour rows and only the ragged
edges from minute rows. Missing dimensions are stored as '' (NULLs would defeat the unique key).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

ROLLUP_KEY = ("span_minutes", "metric", "period", "model", "prompt_name", "segment", "bucket")


class LatencyRollup(SQLModel, table=True):
    """How many requests of one period landed in one latency bucket, for one model/prompt/segment."""

    __tablename__ = "latency_rollup"
    __table_args__ = (sa.UniqueConstraint(*ROLLUP_KEY, name="uq_latency_rollup_key"),)

    id: int | None = Field(default=None, primary_key=True)
    span_minutes: int = Field(description="1 for minute rows, 60 for hour rows")
    metric: str = Field(max_length=16, description="'ttft' or 'latency'")
    period: int = Field(description="start of the period, in minutes since the Unix epoch (UTC)")
    model: str = Field(default="", max_length=200)
    prompt_name: str = Field(default="", max_length=200)
    segment: str = Field(default="", max_length=200)
    bucket: int = Field(description="histogram bucket index, see core.latency")
    count: int
