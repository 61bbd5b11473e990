"""Guardrails and errors: guard triggers (from each request's guard events) and error classes over time."""

from __future__ import annotations

from typing import cast

import pandas as pd
import streamlit as st

from dashboards import queries
from dashboards.context import PageContext, page_context, pick_window, show_table
from dashboards.queries import Step


def render(ctx: PageContext) -> None:
    st.title("Guardrails and errors")
    left, right = st.columns(2)
    with left:
        window = pick_window("guard_window")
    with right:
        step = cast(Step, st.selectbox("Step", ["hour", "day"], key="guard_step"))
    summary = queries.traffic_summary(ctx.engine, window)
    guards = queries.guard_triggers_over_time(ctx.engine, window, step)
    errors = queries.errors_over_time(ctx.engine, window, step)
    columns = st.columns(4)
    columns[0].metric("Requests", f"{summary['requests']:,}")
    columns[1].metric("Errors", f"{summary['errors']:,}")
    rate = summary["errors"] / summary["requests"] if summary["requests"] else 0.0
    columns[2].metric("Error rate", f"{rate:.2%}")
    columns[3].metric("Guard triggers", f"{sum(row['triggers'] for row in guards):,}")

    st.subheader("Guard triggers")
    if guards:
        st.bar_chart(queries.pivot(guards, "period", "guard", "triggers"))
        totals = pd.DataFrame(guards).groupby(["guard", "action"], as_index=False)["triggers"].sum()
        show_table(totals.sort_values("triggers", ascending=False), key="guard_table")
    else:
        st.info("No guard triggered in this range.")

    st.subheader("Errors by class")
    if errors:
        st.bar_chart(queries.pivot(errors, "period", "error_class", "requests"))
        totals = pd.DataFrame(errors).groupby("error_class", as_index=False)["requests"].sum()
        show_table(totals.sort_values("requests", ascending=False), key="error_table")
    else:
        st.info("No failed request in this range.")


if __name__ == "__main__":
    render(page_context())
