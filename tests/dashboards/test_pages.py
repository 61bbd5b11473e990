"""Each page on a seeded database (SQLite and PostgreSQL): the figures shown equal those computed from the data."""

from __future__ import annotations

import math
from collections import Counter

import orjson
import pytest

from core.latency import bucket_of, estimate_percentiles
from core.reviews import list_review_items
from tests.dashboards.conftest import frame, metrics
from tests.dashboards.seed import Seeded


def _ok(row: dict) -> bool:
    return row["status"] < 400 and row["error_class"] is None


def test_latency_page_shows_rollup_percentiles_of_the_seeded_requests(seeded: Seeded, open_page):
    at = open_page("pages/latency.py")
    ok = [row for row in seeded.traffic if _ok(row)]
    expected = estimate_percentiles(Counter(bucket_of(row["latency_ms"]) for row in ok))
    shown = metrics(at)
    assert shown["Requests"] == f"{len(ok):,}"
    for key in ("p50", "p95", "p99"):
        assert shown[f"{key} (ms)"] == f"{expected[key]:,.1f}"
        exact = sorted(row["latency_ms"] for row in ok)[math.ceil(float(key[1:]) / 100 * len(ok)) - 1]
        assert abs(expected[key] - exact) / exact <= 0.05  # the rollups' stated bound
    table = frame(at, "latency_table").set_index("model")
    for model in ("model-a", "model-b"):
        values = [row["latency_ms"] for row in ok if row["served_model"] == model]
        figures = estimate_percentiles(Counter(bucket_of(value) for value in values))
        assert table.loc[model, "requests"] == len(values)
        assert table.loc[model, "p95_ms"] == pytest.approx(figures["p95"])
    at.selectbox(key="latency_group").set_value("segment").run()
    by_segment = frame(at, "latency_table").set_index("segment")
    assert by_segment.loc["pro", "requests"] == sum(1 for row in ok if row["segment"] == "pro")


def test_traffic_page_filters_paginates_and_exports(seeded: Seeded, open_page):
    at = open_page("pages/traffic.py")
    newest_first = sorted(seeded.traffic, key=lambda row: (row["created_at"], row["id"]), reverse=True)
    assert metrics(at)["Matching requests"] == str(len(seeded.traffic))
    assert list(frame(at, "traffic_table")["id"]) == [row["id"] for row in newest_first[:25]]
    at.button(key="traffic_next").click().run()
    assert list(frame(at, "traffic_table")["id"]) == [row["id"] for row in newest_first[25:50]]
    at.button(key="traffic_prev").click().run()
    assert list(frame(at, "traffic_table")["id"]) == [row["id"] for row in newest_first[:25]]

    at.selectbox(key="traffic_requested_model").set_value("model-b").run()
    at.selectbox(key="traffic_outcome").set_value("error").run()
    errors_b = [row for row in newest_first if row["requested_model"] == "model-b" and not _ok(row)]
    assert metrics(at)["Matching requests"] == str(len(errors_b))
    assert list(frame(at, "traffic_table")["id"]) == [row["id"] for row in errors_b]

    at.selectbox(key="traffic_requested_model").set_value("(any)").run()
    at.selectbox(key="traffic_outcome").set_value("any").run()
    at.text_input(key="traffic_search").set_value("question 7 about").run()  # not 70-79
    assert list(frame(at, "traffic_table")["id"]) == ["t00007"]

    at.text_input(key="traffic_search").set_value("").run()
    at.selectbox(key="traffic_user").set_value("alice").run()
    alice_ok = [row for row in seeded.traffic if row["user"] == "alice" and _ok(row)]
    at.button(key="traffic_export").click().run()
    # Failed requests are exported too (without an expected answer); every alice request has a chat body.
    assert at.session_state["traffic_export_cases"] == sum(1 for row in seeded.traffic if row["user"] == "alice")
    assert len(alice_ok) < at.session_state["traffic_export_cases"]

    at.selectbox(key="traffic_detail").set_value(frame(at, "traffic_table")["id"][0]).run()
    assert any("[EMAIL]" in code.value for code in at.code)


def test_guardrails_page_counts_triggers_and_error_classes(seeded: Seeded, open_page):
    at = open_page("pages/guardrails.py")

    triggers = Counter(
        (event["guard"], event["action"])
        for row in seeded.traffic if row["guard_events"]
        for event in orjson.loads(row["guard_events"])
    )
    errors = [row for row in seeded.traffic if not _ok(row)]
    shown = metrics(at)
    assert shown["Requests"] == str(len(seeded.traffic))
    assert shown["Errors"] == str(len(errors))
    assert shown["Error rate"] == f"{len(errors) / len(seeded.traffic):.2%}"
    assert shown["Guard triggers"] == str(sum(triggers.values()))
    guards = frame(at, "guard_table")
    assert {(g, a): n for g, a, n in guards[["guard", "action", "triggers"]].itertuples(index=False)} == triggers
    classes = frame(at, "error_table")
    assert dict(classes[["error_class", "requests"]].itertuples(index=False)) == dict(
        Counter(row["error_class"] for row in errors)
    )


def test_suite_runs_page_compares_a_run_with_its_baseline(seeded: Seeded, open_page):
    at = open_page("pages/suite_runs.py")
    runs = frame(at, "runs_table").set_index("id")
    assert runs.loc[seeded.baseline_run, "pass_rate"] == 1.0
    assert runs.loc[seeded.current_run, "passed"] == 17 and runs.loc[seeded.current_run, "scored"] == 20
    assert at.selectbox(key="run_pick").value == seeded.current_run  # newest first
    at.selectbox(key="baseline_pick").set_value("baseline main").run()
    row = frame(at, "comparison_table").set_index("suite").loc["qa"]
    # Per case: c03 0.0 (both repeats failed), c05 0.5 (flaky), the other eight 1.0; the baseline all 1.0.
    assert row["score"] == pytest.approx(0.85) and row["baseline"] == 1.0
    assert row["delta"] == pytest.approx(-0.15)
    assert row["ci_low"] <= -0.15 <= row["ci_high"]
    assert (row["new_failures"], row["flaky"]) == (1, 1)
    assert [success.value for success in at.success] == ["No regression against baseline main"]  # not significant
    notes = " ".join(element.value for element in at.markdown)
    assert "New failures in qa: c03" in notes and "Flaky cases in qa: c05" in notes

    at.selectbox(key="case_suite").set_value("qa").run()
    at.checkbox(key="case_failing").check().run()
    assert at.selectbox(key="case_pick").options == ["c03", "c05"]
    at.selectbox(key="case_pick").set_value("c03").run()
    reasons = [list(frame(at, f"case_scores_{repeat}")["reason"]) for repeat in (0, 1)]
    assert reasons == [["wrong city"], ["wrong city"]]
    assert [orjson.loads(json.value) for json in at.json] == [{"question": "q3"}] * 2


def test_cost_page_shows_spend_by_dimension(seeded: Seeded, open_page):
    at = open_page("pages/cost.py")
    priced = [row for row in seeded.traffic if row["cost_usd"] is not None]
    shown = metrics(at)
    assert shown["Spend (USD)"] == f"{sum(row['cost_usd'] for row in priced):,.4f}"
    assert shown["Requests"] == str(len(seeded.traffic))
    table = frame(at, "cost_table").set_index("model")
    for model in ("model-a", "model-b"):
        mine = [row for row in priced if row["requested_model"] == model]
        assert table.loc[model, "cost_usd"] == pytest.approx(sum(row["cost_usd"] for row in mine))
    at.selectbox(key="cost_dim").set_value("user").run()
    by_user = frame(at, "cost_table").set_index("user")
    assert by_user.loc["carol", "requests"] == sum(1 for row in seeded.traffic if row["user"] == "carol")


def test_quality_page_puts_the_arms_side_by_side(seeded: Seeded, open_page):
    at = open_page("pages/quality.py")
    assert at.selectbox(key="quality_prompt").value == "greet"
    greet = [row for row in seeded.traffic if row["prompt_name"] == "greet"]
    arm_of = {row["id"]: row["variant"] or "(no label)" for row in greet}
    by_arm: dict[str, list[float]] = {}
    for score in seeded.judge_scores:
        if score["traffic_id"] in arm_of:
            by_arm.setdefault(arm_of[score["traffic_id"]], []).append(score["value"])
    wide = frame(at, "quality_arm_scores")
    assert set(wide.columns) == set(by_arm)
    for arm, values in by_arm.items():
        assert wide.loc["helpfulness", arm] == pytest.approx(sum(values) / len(values))
    assert wide.loc["helpfulness", "canary"] < wide.loc["helpfulness", "production"]
    traffic = frame(at, "quality_arm_traffic").set_index("arm")
    assert set(traffic.index) == {"production", "canary", "shadow"}  # unlabelled traffic is not an arm
    for arm in traffic.index:
        rows = [row for row in greet if row["variant"] == arm]
        assert traffic.loc[arm, "requests"] == len(rows)
        assert traffic.loc[arm, "error_rate"] == pytest.approx(sum(not _ok(r) for r in rows) / len(rows))
    over_time = frame(at, "quality_over_time")
    assert over_time["judged"].sum() == len(seeded.judge_scores)
    pairs = frame(at, "quality_shadow_pairs")
    shadows = sorted((row for row in greet if row["shadow_of"]), key=lambda row: row["created_at"], reverse=True)
    assert list(pairs["request"]) == [row["shadow_of"] for row in shadows][:20]
    served = {row["request_id"]: row for row in seeded.traffic}
    first = served[shadows[0]["shadow_of"]]
    assert pairs["served"][0] == (None if first["status"] >= 400 else f"answer {int(first['id'][1:])}")


def test_review_queue_lists_and_a_lead_labels(seeded: Seeded, engine, open_page):
    flagged = [row for row in seeded.traffic if row["review_reason"]]
    at = open_page("pages/reviews.py", role="lead")
    assert metrics(at)["Open"] == str(len(flagged))
    assert len(frame(at, "review_table")) == min(len(flagged), 25)
    first = at.selectbox(key="review_item").value
    # Widgets of a form are sent together with its submit button.
    at.radio(key="review_label_value").set_value("bad")
    at.text_input(key="review_note").set_value("leaks an address")
    at.button[-1].click().run()
    assert any(f"Item #{first} labelled bad" in success.value for success in at.success)
    labelled = list_review_items(engine, status="labelled")
    assert [(item.id, item.label, item.note, item.reviewer) for item in labelled] == [
        (first, "bad", "leaks an address", "lead")
    ]
    at.run()
    assert metrics(at)["Open"] == str(len(flagged) - 1)
    assert metrics(at)["Labelled bad"] == "1"
