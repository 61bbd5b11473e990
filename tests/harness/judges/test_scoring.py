"""Judge scorers against a scripted judge: verdicts, the cache, unscored failures and judge panels."""

from __future__ import annotations

import pytest

from harness import scorers
from harness.results import LLMResult
from tests.harness.judges.conftest import ScriptedJudge, output_in

STEPS = ["Check that the answer states the fact asked for.", "Penalise answers that add unrelated claims."]


def answer(text: str) -> LLMResult:
    return LLMResult(text=text, model="m", latency_ms=1.0, ttft_ms=None, tokens_in=1, tokens_out=1, cost_usd=0.0)


def grounded(**overrides):
    args = {"name": "grounded", "steps": STEPS, "params": ["input", "actual_output"], "input": "How heavy?",
            "threshold": 0.6, **overrides}
    return scorers.geval(**args)


def test_geval_makes_one_schema_constrained_judge_call_tagged_as_judge_traffic(make_runtime, scripted_judge):
    make_runtime()
    score = grounded()(answer("23 kg"))
    assert score.value == pytest.approx(0.7)
    assert score.passed is True
    assert scripted_judge.calls == 1
    request, headers = scripted_judge.requests[0], scripted_judge.headers[0]
    assert headers["x-tollgate-feature"] == "judge"
    assert request["model"] == "judge-a" and request["temperature"] == 0.0
    schema = request["response_format"]["json_schema"]["schema"]
    assert request["response_format"]["type"] == "json_schema"
    assert schema["properties"]["score"] == {"title": "Score", "type": "integer", "minimum": 0, "maximum": 10}
    assert schema["properties"]["reason"]["maxLength"] == 300
    assert "23 kg" in output_in(request)
    judge = score.details["judge"]
    assert judge["metric"] == "geval:grounded" and judge["judges"] == "judge-a(t=0,max_tokens=256)"
    assert len(judge["rubric_hash"]) == 64 and judge["kappa"] is None
    assert score.details["cached"] is False and score.details["judge_calls"] == 1


def test_unchanged_outputs_are_never_judged_twice(make_runtime, scripted_judge, judge_engine):
    make_runtime()
    outputs = ["23 kg", "two bags", "8 kg"]
    first = [grounded()(answer(text)) for text in outputs]
    assert scripted_judge.calls == 3
    # A new runtime (a new run) on the same database: every verdict comes from the cache.
    runtime = make_runtime()
    second = [grounded()(answer(text)) for text in outputs]
    assert scripted_judge.calls == 3
    assert [s.value for s in second] == [s.value for s in first]
    assert all(s.details["cached"] and s.details["judge_calls"] == 0 for s in second)
    assert runtime.counts() == {"calls": 0, "cached": 3, "failed": 0}
    # Any change to what is judged or how misses the cache: output, input, rubric, judge.
    grounded()(answer("24 kg"))
    grounded(input="How heavy is it?")(answer("23 kg"))
    grounded(steps=[*STEPS, "Be strict."])(answer("23 kg"))
    grounded(judges=["judge-b"])(answer("23 kg"))
    assert scripted_judge.calls == 7
    # The threshold is not part of the rubric: a new pass mark reuses the verdict.
    grounded(threshold=0.9)(answer("23 kg"))
    assert scripted_judge.calls == 7


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("I think it is fine", "unparseable verdict"),
        ((500, "boom"), "HTTP 500"),
        (None, "timed out"),
        (42, "outside 0..1"),
    ],
)
def test_a_judge_failure_leaves_the_case_unscored_and_is_not_cached(make_runtime, scripted_judge, reply, error):
    scripted_judge.script = lambda request: reply
    runtime = make_runtime(timeout_s=1.0)
    score = grounded()(answer("23 kg"))
    assert score.value is None and score.passed is None
    assert score.error is not None and error in score.error
    assert runtime.counts()["failed"] == 1
    scripted_judge.script = lambda request: 8
    make_runtime()  # the next run, on the same database
    retried = grounded()(answer("23 kg"))
    assert retried.value == pytest.approx(0.8) and retried.details["cached"] is False


def test_unscored_cases_stay_out_of_the_suite_denominator(make_runtime, scripted_judge):
    from harness.stats import suite_stats
    from harness.store import CaseRecord

    scripted_judge.script = lambda request: "not json" if "fail me" in output_in(request) else 9
    make_runtime()
    scores = [grounded()(answer(text)) for text in ("23 kg", "fail me", "8 kg")]
    cases = [CaseRecord(suite="s", case_id=f"c{i}", scores=[s.to_dict()], passed=s.passed)
             for i, s in enumerate(scores)]
    stats = suite_stats("s", cases)
    assert stats.n_cases == 2 and stats.n_unscored == 1 and stats.score == 1.0


def test_several_judges_are_averaged_and_their_spread_reported(make_runtime, scripted_judge):
    by_model = {"judge-a": 9, "judge-b": 5, "judge-c": 4}
    scripted_judge.script = lambda request: by_model[request["model"]]
    make_runtime()
    score = grounded(judges=["judge-a", "judge-b", "judge-c"])(answer("23 kg"))
    assert sorted(scripted_judge.models()) == ["judge-a", "judge-b", "judge-c"]
    assert score.value == pytest.approx(0.6)
    assert score.passed is True
    assert score.details["spread"] == pytest.approx(0.5)
    assert score.details["variance"] == pytest.approx(((0.3**2) + (0.1**2) + (0.2**2)) / 3)
    assert [v["value"] for v in score.details["verdicts"]] == pytest.approx([0.9, 0.5, 0.4])


def test_majority_vote_of_judges_at_the_threshold(make_runtime, scripted_judge):
    by_model = {"judge-a": 9, "judge-b": 5, "judge-c": 4}
    scripted_judge.script = lambda request: by_model[request["model"]]
    make_runtime()
    score = grounded(judges=["judge-a", "judge-b", "judge-c"], aggregate="majority")(answer("23 kg"))
    # Mean 0.6 would pass; two of three judges say fail at 0.6.
    assert score.value == 0.0 and score.passed is False


def test_samples_ask_each_judge_several_times_and_one_failure_does_not_unscore(make_runtime, scripted_judge):
    replies = iter([8, "garbage", 6])
    scripted_judge.script = lambda request: next(replies)
    make_runtime(temperature=0.7)
    score = grounded(samples=3)(answer("23 kg"))
    assert scripted_judge.calls == 3
    assert score.value == pytest.approx(0.7)
    assert score.error is None
    assert [v["error"] is not None for v in score.details["verdicts"]] == [False, True, False]


def test_metric_without_what_it_needs_is_unscored_without_a_call(make_runtime, scripted_judge):
    make_runtime()
    score = scorers.faithfulness(context=[])(answer("23 kg"))
    assert score.value is None and "needs context" in (score.error or "")
    assert scripted_judge.calls == 0


def test_json_correctness_needs_no_judge_call(make_runtime, scripted_judge):
    make_runtime()
    schema = {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}
    good = scorers.json_correctness(schema)(answer('{"label": "refund"}'))
    bad = scorers.json_correctness(schema)(answer('{"kind": "refund"}'))
    assert (good.value, bad.value) == (1.0, 0.0)
    assert scripted_judge.calls == 0


def test_bad_judge_arguments_fail_when_the_scorer_is_built():
    from harness.errors import HarnessError

    with pytest.raises(HarnessError, match="needs evaluation steps"):
        scorers.geval(name="x", input="q")
    with pytest.raises(HarnessError, match="aggregate must be one of"):
        scorers.toxicity(aggregate="median")
    with pytest.raises(HarnessError, match="params must be among"):
        scorers.geval(name="x", steps=["a"], params=["retrieval"])


def test_scorers_without_a_runtime_say_how_to_get_one():
    score = scorers.toxicity()(answer("fine"))
    assert score.value is None and "judge runtime" in (score.error or "")


def test_scripted_judge_fixture_counts(scripted_judge: ScriptedJudge):
    assert scripted_judge.calls == 0
