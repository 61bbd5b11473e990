"""Latency: p50/p95/p99 of time to first token and total latency by model, prompt and segment over time.

Every figure comes from the incremental histogram rollups (`core.latency`), never from the traffic table.
"""

from __future__ import annotations

from typing import cast

import pandas as pd
import streamlit as st

from core.latency import Metric, latency_percentiles, latency_percentiles_over_time
from dashboards.context import PageContext, page_context, pick_window, show_table

METRIC_LABELS = {"latency": "Total latency", "ttft": "Time to first token"}
GROUP_LABELS = {"model": "Model", "prompt": "Prompt template", "segment": "User segment"}
STEPS = {"last hour": "1m", "last 24 hours": "1h", "last 7 days": "1h", "last 30 days": "1d"}


def render(ctx: PageContext) -> None:
    st.title("Latency")
    left, middle, right = st.columns(3)
    with left:
        window = pick_window("latency_window")
    with middle:
        metric = cast(Metric, st.selectbox(
            "Metric", list(METRIC_LABELS), format_func=METRIC_LABELS.__getitem__, key="latency_metric"
        ))
    with right:
        group = str(st.selectbox("By", list(GROUP_LABELS), format_func=GROUP_LABELS.__getitem__, key="latency_group"))
    span = str(st.session_state.get("latency_window", "last 24 hours"))
    overall = latency_percentiles(ctx.engine, metric, since=window.since, until=window.until)
    columns = st.columns(4)
    columns[0].metric("Requests", f"{overall['count']:,}")
    for column, key in zip(columns[1:], ("p50", "p95", "p99"), strict=True):
        column.metric(f"{key} (ms)", _ms(overall[key]))
    if not overall["count"]:
        st.info("No successful requests in this range.")
        return
    rows = latency_percentiles_over_time(
        ctx.engine, metric, since=window.since, until=window.until, step=STEPS.get(span, "1h"), group_by=(group,)
    )
    frame = pd.DataFrame(rows)
    shown = str(st.radio("Over time", ["p50", "p95", "p99"], index=1, horizontal=True, key="latency_quantile"))
    st.subheader(f"{shown} over time by {GROUP_LABELS[group].lower()} (ms)")
    chart = frame.pivot_table(index="start", columns=group, values=shown, aggfunc="first")
    st.line_chart(chart)
    st.subheader(f"Whole range by {GROUP_LABELS[group].lower()}")
    totals = []
    for value in sorted({str(v) for v in frame[group]}):
        only: dict[str, str | None] = {"model": None, "prompt": None, "segment": None, group: value}
        figures = latency_percentiles(
            ctx.engine, metric, since=window.since, until=window.until,
            model=only["model"], prompt=only["prompt"], segment=only["segment"],
        )
        totals.append({group: value or "(none)", "requests": figures["count"],
                       "p50_ms": figures["p50"], "p95_ms": figures["p95"], "p99_ms": figures["p99"]})
    show_table(pd.DataFrame(totals), key="latency_table")
    st.caption("Percentiles are read from log-spaced histogram rollups: each is within 4.9% of the exact value.")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


if __name__ == "__main__":
    render(page_context())
