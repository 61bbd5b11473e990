"""Suite runs: pass rates over time, a run against its baseline, and one case's results in full."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from dashboards import run_queries
from dashboards.context import PageContext, page_context, show_table


def render(ctx: PageContext) -> None:
    st.title("Suite runs")
    runs = run_queries.list_runs(ctx.engine)
    if not runs:
        st.info("No runs recorded yet: run a suite with `pytest suites/`.")
        return
    frame = pd.DataFrame(runs)
    st.subheader("Runs over time")
    chart = frame.dropna(subset=["pass_rate"]).set_index("started_at")[["pass_rate"]]
    if not chart.empty:
        st.line_chart(chart)
    show_table(
        frame[["id", "started_at", "label", "git_branch", "status", "results", "passed", "scored", "pass_rate"]],
        key="runs_table",
    )
    labels = {row["id"]: _run_label(row) for row in runs}
    run_id = st.selectbox("Run", list(labels), format_func=labels.__getitem__, key="run_pick")
    if run_id is None:
        return
    st.subheader("Suites of this run")
    show_table(pd.DataFrame(run_queries.suite_summary(ctx.engine, run_id)), key="suites_table")
    _comparison(ctx, run_id, runs)
    _drill_down(ctx, run_id)


def _run_label(row: dict[str, object]) -> str:
    started = row["started_at"]
    when = started.strftime("%Y-%m-%d %H:%M") if hasattr(started, "strftime") else str(started)
    return f"{str(row['id'])[:8]} {row['label'] or ''} ({when})".replace("  ", " ")


def _comparison(ctx: PageContext, run_id: str, runs: list[dict[str, object]]) -> None:
    st.subheader("Against a baseline")
    named = run_queries.baselines(ctx.engine)
    choices = {f"baseline {name}": rid for name, rid in named.items() if rid != run_id}
    choices.update({f"run {str(r['id'])[:8]}": str(r["id"]) for r in runs if r["id"] != run_id})
    if not choices:
        st.info("No other run to compare with.")
        return
    picked = st.selectbox("Compare with", list(choices), key="baseline_pick")
    comparison = run_queries.compare_with(ctx.engine, run_id, choices[str(picked)])
    rows = [
        {
            "suite": row.suite, "cases": row.cases, "score": _num(row.score), "baseline": _num(row.baseline_score),
            "delta": _num(row.delta), "ci_low": _num(row.ci_low), "ci_high": _num(row.ci_high),
            "p_value": _num(row.p_value if row.delta <= 0 else row.p_value_improved), "verdict": row.verdict,
            "new_failures": len(row.new_failures), "flaky": len(row.flaky),
        }
        for row in comparison.rows
    ]
    show_table(pd.DataFrame(rows), key="comparison_table")
    if comparison.failed:
        regressed = ", ".join(row.suite for row in comparison.regressions) or "replayed suites"
        st.error(f"Regression against {picked}: {regressed}")
    else:
        st.success(f"No regression against {picked}")
    for row in comparison.rows:
        if row.reasons:
            st.caption(f"**{row.suite}** ({row.verdict}): " + "; ".join(row.reasons))
        if row.new_failures:
            st.write(f"New failures in {row.suite}: " + _some(row.new_failures))
        if row.flaky:
            st.write(f"Flaky cases in {row.suite}: " + _some(row.flaky))


def _some(case_ids: tuple[str, ...], shown: int = 20) -> str:
    more = len(case_ids) - shown
    return ", ".join(case_ids[:shown]) + (f" and {more} more (see the drill-down)" if more > 0 else "")


def _num(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 4)


def _drill_down(ctx: PageContext, run_id: str) -> None:
    st.subheader("Case drill-down")
    suites = [row["suite"] for row in run_queries.suite_summary(ctx.engine, run_id)]
    suite = st.selectbox("Suite", suites, key="case_suite")
    if suite is None:
        return
    failing = st.checkbox("Only cases with a failure or error", key="case_failing")
    ids = run_queries.case_ids(ctx.engine, run_id, suite, failing_only=failing)
    case_id = st.selectbox("Case", ids, key="case_pick")
    if case_id is None:
        st.info("No case matches.")
        return
    for result in run_queries.case_results(ctx.engine, run_id, suite, case_id):
        outcome = {True: "passed", False: "failed", None: "unscored"}[result["passed"]]
        with st.expander(f"repeat {result['repeat']}: {outcome}", expanded=True):
            st.markdown("**Input**")
            st.json(result["inputs"] or {})
            st.markdown("**Output**")
            output = result["output"] or {}
            st.code(str(output.get("text", "")) or "(no text)", language=None)
            if result["error"]:
                st.error(result["error"])
            scores = [
                {
                    "scorer": score.get("name"), "value": score.get("value"), "passed": score.get("passed"),
                    "threshold": score.get("threshold"), "reason": run_queries.score_reason(score),
                }
                for score in result["scores"] or []
            ]
            show_table(pd.DataFrame(scores), key=f"case_scores_{result['repeat']}")


if __name__ == "__main__":
    render(page_context())
