"""Review queue: outputs flagged by guards, judges or low confidence; leads label them good or bad."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.reviews import LABELS, ReviewError, label_review_item, list_review_items
from dashboards import queries
from dashboards.context import PageContext, lead_only, page_context, show_table

_ANY = "(any)"
STATUSES = {"open": "open", "labelled": "labelled", _ANY: None}


def render(ctx: PageContext) -> None:
    st.title("Review queue")
    counts = queries.review_counts(ctx.engine)
    open_items = sum(row["items"] for row in counts if row["status"] == "open")
    labelled = [row for row in counts if row["status"] == "labelled"]
    columns = st.columns(3)
    columns[0].metric("Open", f"{open_items:,}")
    columns[1].metric("Labelled good", f"{sum(r['items'] for r in labelled if r['label'] == 'good'):,}")
    columns[2].metric("Labelled bad", f"{sum(r['items'] for r in labelled if r['label'] == 'bad'):,}")
    if counts:
        show_table(pd.DataFrame(counts), key="review_counts")

    left, middle, right = st.columns(3)
    status = left.selectbox("Status", list(STATUSES), key="review_status")
    source_pick = middle.selectbox("Source", [_ANY, *queries.review_sources(ctx.engine)], key="review_source")
    source = None if source_pick == _ANY else str(source_pick)
    total = queries.count_reviews(ctx.engine, STATUSES[str(status)], source)
    size = ctx.settings.dashboard.page_rows
    pages = max(1, -(-total // size))
    page = int(right.number_input("Page", min_value=1, max_value=pages, value=1, step=1, key="review_page"))
    items = list_review_items(ctx.engine, status=STATUSES[str(status)], source=source, limit=size,
                              offset=(page - 1) * size)
    st.caption(f"{total:,} item(s); page {page} of {pages}")
    if not items:
        st.info("Nothing to review here.")
        return
    table = [
        {"id": item.id, "created_at": item.created_at, "source": item.source, "reason": item.reason,
         "model": item.model, "prompt": item.prompt_name, "score": item.score, "status": item.status,
         "label": item.label, "reviewer": item.reviewer}
        for item in items
    ]
    show_table(pd.DataFrame(table), key="review_table")
    by_id = {item.id: item for item in items}
    picked = st.selectbox("Item", list(by_id), format_func=lambda i: f"#{i} {by_id[i].reason[:60]}", key="review_item")
    item = by_id[picked]
    st.markdown("**Input** (redacted)")
    st.code(item.input_text or "(none)", language=None)
    st.markdown("**Output** (redacted)")
    st.code(item.output_text or "(none)", language=None)
    if item.details:
        st.caption(f"Details: {item.details}")
    if not lead_only(ctx.user, "label review items"):
        return
    with st.form("review_label"):
        label = st.radio("Label", LABELS, horizontal=True, key="review_label_value")
        note = st.text_input("Note", key="review_note")
        submitted = st.form_submit_button("Save label")
    if submitted and item.id is not None:
        try:
            label_review_item(ctx.engine, item.id, str(label), reviewer=ctx.user.name, note=note.strip() or None)
        except ReviewError as exc:
            st.error(str(exc))
            return
        st.success(f"Item #{item.id} labelled {label}.")


if __name__ == "__main__":
    render(page_context())
