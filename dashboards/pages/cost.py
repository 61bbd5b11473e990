"""Cost: spend by model, user, feature and day (from the cost rollups), budgets and their use, and alerts."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.alerts import list_alerts
from core.budgets import EVERY, all_limits, spend_by_scope, window_of
from core.costs import DIMENSIONS, cost_by, cost_over_time
from dashboards.context import PageContext, page_context, pick_window, show_table

DIMENSION_LABELS = {"model": "Model", "user": "User", "feature": "Feature", "key": "Virtual key"}


def render(ctx: PageContext) -> None:
    st.title("Cost")
    left, right = st.columns(2)
    with left:
        window = pick_window("cost_window", default="last 7 days")
    with right:
        dimension = str(st.selectbox("By", DIMENSIONS, format_func=DIMENSION_LABELS.__getitem__, key="cost_dim"))
    totals = cost_by(ctx.engine, dimension, window.since, window.until)
    columns = st.columns(4)
    columns[0].metric("Spend (USD)", f"{sum(row['cost_usd'] for row in totals):,.4f}")
    columns[1].metric("Requests", f"{sum(row['requests'] for row in totals):,}")
    columns[2].metric("Tokens", f"{sum(row['tokens_in'] + row['tokens_out'] for row in totals):,}")
    columns[3].metric("Unpriced requests", f"{sum(row['unpriced'] for row in totals):,}")
    st.subheader(f"Spend per day by {DIMENSION_LABELS[dimension].lower()}")
    daily = cost_over_time(ctx.engine, dimension, window.since, window.until, step="day")
    if daily:
        frame = pd.DataFrame(daily)
        frame["day"] = frame["start"].dt.strftime("%Y-%m-%d")
        st.bar_chart(frame.pivot_table(index="day", columns=dimension, values="cost_usd", aggfunc="sum"))
    show_table(
        pd.DataFrame(totals, columns=[dimension, "requests", "tokens_in", "tokens_out", "cost_usd", "unpriced"]),
        key="cost_table",
    )
    _budgets(ctx)
    _alerts(ctx, window.since)


def _budgets(ctx: PageContext) -> None:
    st.subheader("Budgets")
    limits = all_limits(ctx.engine, ctx.settings.access.budgets)
    if not limits:
        st.caption("No budget configured (access.budgets, or `tollgate keys` with --budget).")
        return
    spend = spend_by_scope(ctx.engine, {(limit.scope, limit.period) for limit in limits})
    rows = []
    for limit in limits:
        spent = spend.get((limit.scope, limit.period), {})
        subjects = sorted(spent) if limit.subject == EVERY else [limit.subject]
        for subject in subjects or [limit.subject]:
            used = spent.get(subject, 0.0)
            rows.append({
                "scope": limit.scope, "subject": subject, "period": limit.period,
                "window": window_of(limit.period).label, "limit_usd": limit.limit_usd,
                "spent_usd": round(used, 6), "used": round(used / limit.limit_usd, 4),
            })
    show_table(
        pd.DataFrame(rows), key="budget_table",
        column_config={"used": st.column_config.ProgressColumn("used", min_value=0.0, max_value=1.0)},
    )


def _alerts(ctx: PageContext, since: object) -> None:
    st.subheader("Alerts")
    alerts = list_alerts(ctx.engine, since=since, limit=100)  # type: ignore[arg-type]
    if not alerts:
        st.caption("No cost alert in this range.")
        return
    show_table(pd.DataFrame([
        {"at": a.created_at, "kind": a.kind, "scope": a.scope, "subject": a.subject, "message": a.message,
         "value": a.value, "threshold": a.threshold, "delivered": a.delivered}
        for a in alerts
    ]), key="alert_table")


if __name__ == "__main__":
    render(page_context())
