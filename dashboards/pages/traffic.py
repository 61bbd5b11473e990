"""Traffic: filter and search the logged (redacted) requests and answers; export a selection as a dataset."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import pandas as pd
import streamlit as st

from dashboards import queries
from dashboards.context import PageContext, page_context, pick_window, show_table

_CURSORS = "traffic_cursors"  # the last row of each page already shown: keyset pagination going back
_ANY = "(any)"


def render(ctx: PageContext) -> None:
    st.title("Traffic")
    selection = _filters(ctx)
    # A new filter starts again at page 1 (the window itself moves with the clock on every rerun).
    fingerprint = repr(
        [st.session_state.get("traffic_window")]
        + [getattr(selection, field.name) for field in dataclasses.fields(selection) if field.name != "window"]
    )
    if st.session_state.get("traffic_fingerprint") != fingerprint:
        st.session_state["traffic_fingerprint"] = fingerprint
        st.session_state[_CURSORS] = []
    count, capped = queries.count_traffic(ctx.engine, selection)
    st.metric("Matching requests", f"{count:,}{'+' if capped else ''}")
    cursors: list[tuple[datetime, str]] = st.session_state[_CURSORS]
    size = ctx.settings.dashboard.page_rows
    rows = queries.list_traffic(ctx.engine, selection, limit=size, after=cursors[-1] if cursors else None)
    st.caption(f"Page {len(cursors) + 1}: rows {len(cursors) * size + 1}-{len(cursors) * size + len(rows)}")
    show_table(pd.DataFrame(rows), key="traffic_table")
    back, forward = st.columns(2)
    if back.button("Previous page", disabled=not cursors, key="traffic_prev"):
        cursors.pop()
        st.rerun()
    if forward.button("Next page", disabled=len(rows) < size, key="traffic_next"):
        cursors.append((rows[-1]["created_at"], rows[-1]["id"]))
        st.rerun()
    _detail(ctx, rows)
    _export(ctx, selection, count)


def _filters(ctx: PageContext) -> queries.TrafficFilter:
    first, second, third, fourth = st.columns(4)
    with first:
        window = pick_window("traffic_window")
    picks: dict[str, Any] = {}
    for column, (name, field) in zip(
        (second, third, fourth, first, second, third),
        (("Model", "requested_model"), ("User", "user"), ("Feature", "feature"),
         ("Prompt", "prompt_name"), ("Arm", "variant"), ("Error class", "error_class")),
        strict=True,
    ):
        options = [_ANY, *queries.filter_options(ctx.engine, field, window)]
        value = column.selectbox(name, options, key=f"traffic_{field}")
        picks[field] = None if value == _ANY else value
    outcome = fourth.selectbox("Outcome", ["any", "ok", "error"], key="traffic_outcome")
    search = st.text_input("Search request and answer text", key="traffic_search").strip() or None
    flagged = st.checkbox("Only requests flagged for review", key="traffic_flagged")
    return queries.TrafficFilter(
        window=window, model=picks["requested_model"], user=picks["user"], feature=picks["feature"],
        prompt=picks["prompt_name"], variant=picks["variant"], error_class=picks["error_class"],
        outcome=outcome, search=search, flagged=flagged,  # type: ignore[arg-type]
    )


def _detail(ctx: PageContext, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    picked = st.selectbox("Show request", [_ANY, *(row["id"] for row in rows)], key="traffic_detail")
    if picked == _ANY:
        return
    record = queries.traffic_record(ctx.engine, str(picked))
    if record is None:
        return
    meta = {k: v for k, v in record.items() if k not in ("request_body", "response_body") and v is not None}
    st.json({k: str(v) if isinstance(v, datetime) else v for k, v in meta.items()})
    st.markdown("**Request** (redacted)")
    st.code(record["request_body"] or "(not logged)", language="json")
    st.markdown("**Answer** (redacted)")
    st.code(record["response_body"] or "(not logged)", language="json")


def _export(ctx: PageContext, selection: queries.TrafficFilter, count: int) -> None:
    st.subheader("Export as a dataset")
    st.caption(f"Up to {queries.EXPORT_CAP:,} of the selected requests, newest first, as JSONL cases.")
    if not st.button("Prepare export", disabled=count == 0, key="traffic_export"):
        return
    text, skipped = queries.export_dataset(ctx.engine, selection)
    cases = text.count("\n")
    st.session_state["traffic_export_cases"] = cases
    st.write(f"{cases} case(s); {skipped} request(s) left out (bodies not logged, truncated or not chat).")
    # on_click="ignore": downloading must not rerun the page (which would drop the prepared file).
    st.download_button("Download dataset.jsonl", text, file_name="traffic-dataset.jsonl",
                       mime="application/jsonl", key="traffic_download", on_click="ignore")


if __name__ == "__main__":
    render(page_context())
