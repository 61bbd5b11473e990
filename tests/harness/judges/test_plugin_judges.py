"""Judge scorers in a real pytest run (pytester): judge calls, the cache across runs, the agreement gate and
judge changes against a baseline. The scripted judge also answers the suite's own model calls."""

from __future__ import annotations

import json

import pytest

from tests.harness.judges.conftest import ScriptedJudge

pytest_plugins = ["pytester"]

PROMPT = """---
name: answer
model: app-model
parameters: {temperature: 0, max_tokens: 10}
---
[INSTRUCTION]
{{ question }}
"""

SUITE = """
import pytest
from harness import scorers

@pytest.mark.dataset("datasets/cases.jsonl")
@pytest.mark.prompt("answer")
@pytest.mark.tollgate_suite("judged")
def test_judged(case, result, score):
    score(scorers.geval(name="right", steps=["Is the answer right?"], input=case.inputs["question"]))
"""


def script(request):
    if "response_format" in request:
        return 8  # a verdict
    return "an answer to " + request["messages"][-1]["content"]


def make_project(pytester: pytest.Pytester, judge_model: str = "judge-a") -> None:
    pytester.makefile(".prompt", **{"prompts/answer": PROMPT})
    rows = [{"id": f"q{i}", "inputs": {"question": f"question {i}"}} for i in range(3)]
    (pytester.path / "datasets").mkdir(exist_ok=True)
    (pytester.path / "datasets" / "cases.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    pytester.makepyfile(test_suite=SUITE)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    (pytester.path / "tollgate.yaml").write_text(
        "prices:\n  app-model: {input_per_mtok: 1.0, output_per_mtok: 1.0}\n"
        f"  {judge_model}: {{input_per_mtok: 1.0, output_per_mtok: 1.0}}\n"
        f"judges:\n  model: {judge_model}\n  timeout_s: 30\n")


def run(pytester: pytest.Pytester, judge: ScriptedJudge, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:deepeval", f"--tollgate-url={judge.url}",
                                         "--tollgate-stream=false", "--tollgate-concurrency=1", *args)


def judge_calls(judge: ScriptedJudge) -> int:
    return sum(1 for headers in judge.headers if headers.get("x-tollgate-feature") == "judge")


def test_second_run_makes_no_judge_call(pytester, scripted_judge):
    scripted_judge.script = script
    make_project(pytester)
    first = run(pytester, scripted_judge, "--tollgate-save-baseline=main")
    assert first.ret == 0
    first.assert_outcomes(passed=3)
    first.stdout.fnmatch_lines(["tollgate judges: 3 judge calls, 0 verdicts from the cache, 0 failed (unscored)"])
    assert judge_calls(scripted_judge) == 3
    assert scripted_judge.calls == 6  # three model calls, three judge calls
    second = run(pytester, scripted_judge, "--tollgate-baseline=main")
    assert second.ret == 0
    second.stdout.fnmatch_lines(["tollgate judges: 0 judge calls, 3 verdicts from the cache, 0 failed (unscored)"])
    assert judge_calls(scripted_judge) == 3
    assert "judge changed" not in second.stdout.str()


def test_uncalibrated_judge_fails_a_gate_that_requires_agreement(pytester, scripted_judge):
    scripted_judge.script = script
    make_project(pytester)
    result = run(pytester, scripted_judge, "--tollgate-min-judge-agreement=0.4")
    assert result.ret == 1
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*FAIL judge judge-a(t=0,max_tokens=256) is not calibrated for geval:right*",
                                 "*tollgate gate: FAILED (judge agreement)*"])


def test_a_judge_change_is_named_in_the_comparison(pytester, scripted_judge):
    scripted_judge.script = script
    make_project(pytester)
    assert run(pytester, scripted_judge, "--tollgate-save-baseline=main").ret == 0
    make_project(pytester, judge_model="judge-b")
    result = run(pytester, scripted_judge, "--tollgate-baseline=main")
    result.stdout.fnmatch_lines([("*judged: geval: judge changed (judge-a(t=0,max_tokens=256) -> "
                                 "judge-b(t=0,max_tokens=256)); scores are not comparable*")])
