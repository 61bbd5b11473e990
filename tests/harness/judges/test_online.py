"""Online evaluation of logged traffic: sampling rates, scores linked to traffic, the review queue."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from core.reviews import list_review_items
from harness.judges.config import metric_from_config
from harness.judges.online import evaluate_traffic, sample_point, scores_for_traffic
from tests.harness.judges.conftest import add_traffic, output_in, prompt_of

HELPFUL = metric_from_config({"name": "geval", "args": {"name": "helpful", "steps": ["Is the answer helpful?"]},
                              "threshold": 0.5})


def answer_number(request) -> int:
    return int(re.search(r"answer (\d+)", output_in(request)).group(1))


def test_sampling_is_by_traffic_id_and_close_to_the_rate(make_runtime, scripted_judge, judge_engine):
    ids = add_traffic(judge_engine, 400)
    runtime = make_runtime()
    expected = {i for i in ids if sample_point(i) < 0.25}
    report = evaluate_traffic(runtime, [HELPFUL], rate=0.25, since=timedelta(hours=1))
    assert report.window == 400
    assert report.sampled == len(expected)
    assert 70 <= report.sampled <= 130  # 25% of 400, give or take the hash
    assert scripted_judge.calls == report.sampled == report.scored
    judged = {f"{answer_number(r):032x}" for r in scripted_judge.requests}
    assert judged == expected


@pytest.mark.parametrize(("rate", "expected"), [(0.0, 0), (1.0, 40)])
def test_rate_zero_judges_nothing_and_rate_one_everything(make_runtime, scripted_judge, judge_engine, rate,
                                                          expected):
    add_traffic(judge_engine, 40)
    report = evaluate_traffic(make_runtime(), [HELPFUL], rate=rate, since=timedelta(hours=1))
    assert (report.sampled, scripted_judge.calls) == (expected, expected)


def test_window_judge_traffic_and_reruns(make_runtime, scripted_judge, judge_engine):
    add_traffic(judge_engine, 10)
    add_traffic(judge_engine, 5, start=10, age_s=7200)  # outside the window
    add_traffic(judge_engine, 5, start=20, feature="judge")  # the judges' own calls
    runtime = make_runtime()
    first = evaluate_traffic(runtime, [HELPFUL], rate=1.0, since=timedelta(hours=1))
    assert (first.window, first.scored, scripted_judge.calls) == (10, 10, 10)
    again = evaluate_traffic(runtime, [HELPFUL], rate=1.0, since=timedelta(hours=1))
    assert (again.skipped_scored, again.scored, scripted_judge.calls) == (10, 0, 10)


def test_scores_are_stored_with_the_traffic_id_and_provenance(make_runtime, scripted_judge, judge_engine):
    ids = add_traffic(judge_engine, 3, stream=True)
    runtime = make_runtime()
    evaluate_traffic(runtime, [HELPFUL], rate=1.0, since=timedelta(hours=1))
    assert "question 1" in prompt_of(scripted_judge.requests[1]) and "Be brief" not in prompt_of(
        scripted_judge.requests[1])
    rows = scores_for_traffic(runtime, ids[1])
    assert len(rows) == 1
    row = rows[0]
    assert row["metric"] == "geval:helpful" and row["value"] == pytest.approx(0.7) and row["passed"] is True
    assert row["judges"] == "judge-a(t=0,max_tokens=256)" and len(row["rubric_hash"]) == 64
    assert row["details"]["verdicts"][0]["value"] == pytest.approx(0.7)


def test_failed_disagreeing_and_low_confidence_items_go_to_review(make_runtime, scripted_judge, judge_engine):
    ids = add_traffic(judge_engine, 6)
    add_traffic(judge_engine, 2, start=6, confidence=0.2)
    add_traffic(judge_engine, 2, start=8, confidence=0.9)

    def script(request):
        n = answer_number(request)
        if n in (0, 1):
            return "no verdict here"  # judge failure
        if n == 2:
            return 9 if request["model"] == "judge-a" else 1  # the judges disagree
        return 8

    scripted_judge.script = script
    runtime = make_runtime(models=["judge-a", "judge-b"])
    report = evaluate_traffic(runtime, [HELPFUL], rate=1.0, since=timedelta(hours=1))
    assert (report.scored, report.unscored) == (8, 2)
    items = {item.traffic_id: item for item in list_review_items(judge_engine, source="judge")}
    assert set(items) == {ids[0], ids[1], ids[2], f"{6:032x}", f"{7:032x}"}
    assert report.queued == 5
    assert "judge failed" in items[ids[0]].reason
    assert "judges disagree (spread 0.80)" in items[ids[2]].reason
    assert items[f"{6:032x}"].reason == "low confidence 0.20"
    assert items[ids[2]].output_text == "answer 2" and items[ids[2]].input_text == "question 2"
    assert items[ids[2]].status == "open"


def test_rates_outside_0_1_are_refused(make_runtime):
    from harness.errors import HarnessError

    with pytest.raises(HarnessError, match="within 0..1"):
        evaluate_traffic(make_runtime(), [HELPFUL], rate=1.5, since=timedelta(hours=1))


def test_eval_traffic_command(scripted_judge, judge_engine, sqlite_url, tmp_path, capsys):
    from core.cli import main

    add_traffic(judge_engine, 20)
    config = tmp_path / "tollgate.yaml"
    config.write_text(f"database_url: {sqlite_url}\njudges:\n  model: judge-a\n  timeout_s: 30\n  metrics:\n"
                      "    helpful: {name: geval, args: {name: helpful, steps: ['Is it helpful?']}}\n")
    args = ["eval-traffic", "--config", str(config), "--url", scripted_judge.url, "--sample", "0.5", "--since", "1h"]
    assert main(args) == 0
    out = capsys.readouterr().out
    sampled = sum(1 for i in range(20) if sample_point(f"{i:032x}") < 0.5)
    assert f"20 records in the last 1h; {sampled} sampled at 0.5 (0 already scored)" in out
    assert f"geval:helpful: {sampled} scored, {sampled} passed, 0 unscored" in out
    assert f"{sampled} judge calls; 0 item(s) queued for review" in out
    assert main([*args, "--json"]) == 0
    assert '"skipped_scored": ' + str(sampled) in capsys.readouterr().out
    assert main([*args, "--metric", "nonsense"]) == 2
