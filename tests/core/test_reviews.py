"""The review queue: items queued from flagged traffic rows or directly, listed and labelled."""

from __future__ import annotations

import pytest

from core.database import open_database
from core.reviews import (
    ReviewError,
    add_review_item,
    label_review_item,
    list_review_items,
    queue_reviews,
    split_review_reason,
)
from core.tables.common import utc_now


@pytest.fixture
def engine(db_url):
    engine = open_database(db_url)
    yield engine
    engine.dispose()


def test_reason_prefix_names_the_source():
    assert split_review_reason("guard: pii in output") == ("guard", "pii in output")
    assert split_review_reason("low confidence: 0.2") == ("sidecar", "low confidence: 0.2")
    assert split_review_reason("plain") == ("sidecar", "plain")


def test_flagged_traffic_rows_become_open_items(engine):
    rows = [
        {"id": "t1", "request_id": "r1", "created_at": utc_now(), "review_reason": "confidence: mean logprob -3.2",
         "served_model": "m", "request_body": "in", "response_body": "out", "confidence": 0.1,
         "guard_events": None, "prompt_name": None},
        {"id": "t2", "request_id": "r2", "review_reason": None},
    ]
    with engine.begin() as connection:
        assert queue_reviews(connection, rows) == 1
    items = list_review_items(engine)
    assert len(items) == 1
    item = items[0]
    assert (item.source, item.reason, item.traffic_id, item.score) == ("confidence", "mean logprob -3.2", "t1", 0.1)
    assert (item.input_text, item.output_text, item.status) == ("in", "out", "open")


def test_labelling_moves_an_item_out_of_the_open_queue(engine):
    first = add_review_item(engine, source="judge", reason="judges disagree", details={"scores": [0.1, 0.9]})
    second = add_review_item(engine, source="guard", reason="toxicity 0.8 >= 0.5")
    labelled = label_review_item(engine, first, "bad", reviewer="lead@example.com", note="wrong city")
    assert (labelled.status, labelled.label, labelled.reviewer) == ("labelled", "bad", "lead@example.com")
    assert labelled.reviewed_at is not None
    assert [item.id for item in list_review_items(engine)] == [second]
    assert [item.id for item in list_review_items(engine, status="labelled")] == [first]
    assert [item.id for item in list_review_items(engine, status=None, source="guard")] == [second]


def test_bad_labels_and_unknown_items_are_refused(engine):
    item = add_review_item(engine, source="guard", reason="r")
    with pytest.raises(ReviewError, match="label must be one of"):
        label_review_item(engine, item, "meh", reviewer="x")
    with pytest.raises(ReviewError, match="no review item"):
        label_review_item(engine, item + 100, "good", reviewer="x")
