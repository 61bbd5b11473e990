"""Quality in production: online judge scores over time, and canary and shadow against production.

The side-by-side figures of one prompt's release arms come from `core.releases.comparisons` (the same
comparison `tollgate release` and the admin API show); judge scores per arm are aggregated in SQL here.
"""

from __future__ import annotations

from typing import cast

import pandas as pd
import streamlit as st

from core.releases.comparisons import compare_variants, shadow_pairs
from dashboards import quality_queries, queries
from dashboards.context import PageContext, page_context, pick_window, show_table
from dashboards.queries import Step


def render(ctx: PageContext) -> None:
    st.title("Quality in production")
    left, middle, right = st.columns(3)
    with left:
        window = pick_window("quality_window")
    with middle:
        step = cast(Step, st.selectbox("Step", ["hour", "day"], key="quality_step"))
    with right:
        prompts = queries.filter_options(ctx.engine, "prompt_name", window)
        prompt = st.selectbox("Prompt", prompts, key="quality_prompt")

    st.subheader("Online judge scores over time")
    over_time = quality_queries.scores_over_time(ctx.engine, window, step)
    if over_time:
        st.line_chart(queries.pivot(over_time, "period", "metric", "mean_score"))
        show_table(pd.DataFrame(over_time), key="quality_over_time")
    else:
        st.info("No traffic was judged in this range (`tollgate eval-traffic` or online judging).")
    if prompt is None:
        st.info("No prompt served traffic in this range.")
        return

    st.subheader(f"Release arms of {prompt} side by side")
    by_arm = quality_queries.scores_by_arm(ctx.engine, window, str(prompt))
    if by_arm:
        wide = pd.DataFrame(by_arm).pivot_table(index="metric", columns="arm", values="mean_score")
        show_table(wide, key="quality_arm_scores", hide_index=False)
    variants = compare_variants(ctx.engine, prompt_name=str(prompt), since=window.since, until=window.until)
    if not variants:
        st.caption("No request of this prompt was served under a release label in this range.")
    else:
        show_table(pd.DataFrame([
            {"arm": v.variant, "experiment": v.experiment, "requests": v.requests, "error_rate": v.error_rate,
             "latency_p50_ms": v.latency_p50_ms, "latency_p95_ms": v.latency_p95_ms, "ttft_p50_ms": v.ttft_p50_ms,
             "cost_per_request_usd": v.cost_per_request_usd, "flagged_rate": v.flagged_rate,
             "mean_confidence": v.mean_confidence, "versions": ", ".join(v.versions)}
            for v in variants
        ]), key="quality_arm_traffic")
    pairs = shadow_pairs(ctx.engine, prompt_name=str(prompt), since=window.since, limit=20)
    if pairs:
        st.markdown("**Latest shadow answers next to the answers served**")
        show_table(pd.DataFrame([
            {"request": p.request_id, "served": queries.answer_text(p.served_output),
             "shadow": queries.answer_text(p.shadow_output), "served_ms": p.served_latency_ms,
             "shadow_ms": p.shadow_latency_ms, "shadow_status": p.shadow_status}
            for p in pairs
        ]), key="quality_shadow_pairs")


if __name__ == "__main__":
    render(page_context())
