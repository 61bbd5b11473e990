"""Quality in production: online judge scores over time, and canary and shadow against production."""

from __future__ import annotations

from typing import cast

import pandas as pd
import streamlit as st

from dashboards import quality_queries, queries
from dashboards.context import PageContext, page_context, pick_window, show_table
from dashboards.queries import Step


def render(ctx: PageContext) -> None:
    st.title("Quality in production")
    left, middle, right = st.columns(3)
    with left:
        window = pick_window("quality_window")
    with middle:
        step = cast(Step, st.selectbox("Step", ["hour", "day"], index=1, key="quality_step"))
    with right:
        prompts = ["(all)", *queries.filter_options(ctx.engine, "prompt_name", window)]
        picked = st.selectbox("Prompt", prompts, key="quality_prompt")
    prompt = None if picked == "(all)" else str(picked)

    st.subheader("Online judge scores over time")
    over_time = quality_queries.scores_over_time(ctx.engine, window, step)
    if over_time:
        st.line_chart(queries.pivot(over_time, "period", "metric", "mean_score"))
        show_table(pd.DataFrame(over_time), key="quality_over_time")
    else:
        st.info("No traffic was judged in this range (`tollgate eval-traffic` or online judging).")

    st.subheader("Release arms side by side")
    by_arm = quality_queries.scores_by_arm(ctx.engine, window, prompt)
    if by_arm:
        wide = pd.DataFrame(by_arm).pivot_table(index="metric", columns="arm", values="mean_score")
        show_table(wide, key="quality_arm_scores", hide_index=False)
    arms = queries.arm_comparison(ctx.engine, window, prompt)
    show_table(pd.DataFrame(arms), key="quality_arm_traffic")
    st.caption("Arms: production (no label), canary (a share of users), shadow (mirrored, never returned).")


if __name__ == "__main__":
    render(page_context())
