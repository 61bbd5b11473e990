"""The pytest plugin end to end, with `pytester`: outcomes AND exit codes, against the fake upstream."""

from __future__ import annotations

import json

import orjson
import pytest

from sidecar.fake_upstream import FakeBehaviour, FakeUpstreamThread, start_fake_upstream_thread

pytest_plugins = ["pytester"]

PROMPT = """---
name: classify
model: fake-model
parameters: {temperature: 0, max_tokens: 10}
---
[SYSTEM]
Classify the message.
[INSTRUCTION]
{{ text }}
"""

SUITE = """
import pytest
from harness import scorers

@pytest.mark.dataset("datasets/cases.jsonl")
@pytest.mark.prompt("classify")
@pytest.mark.tollgate_suite("classify", max_drop={max_drop})
def test_classify(case, result, score):
    score(scorers.contains(case.expected))
"""


@pytest.fixture
def fake() -> FakeUpstreamThread:
    with start_fake_upstream_thread(FakeBehaviour()) as handle:
        yield handle


def make_project(pytester: pytest.Pytester, n_cases: int = 30, max_drop: float = 0.05) -> None:
    pytester.makefile(".prompt", **{"prompts/classify": PROMPT})
    rows = [{"id": f"c{i:02d}", "inputs": {"text": f"message {i}"}, "expected": f"message {i}"} for i in range(n_cases)]
    (pytester.path / "datasets").mkdir(exist_ok=True)
    (pytester.path / "datasets" / "cases.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    pytester.makepyfile(test_suite=SUITE.format(max_drop=max_drop))
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    # A configured price keeps litellm's price map (and its slow import) out of these runs.
    (pytester.path / "tollgate.yaml").write_text("prices:\n  fake-model: {input_per_mtok: 1.0, output_per_mtok: 2.0}\n")


def run(pytester: pytest.Pytester, fake: FakeUpstreamThread, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--tollgate-url={fake.url}", *args)


def report(pytester: pytest.Pytester) -> dict:
    return orjson.loads((pytester.path / ".tollgate" / "reports" / "last.json").read_bytes())


def test_suite_passes_and_records_a_run(pytester, fake):
    make_project(pytester)
    result = run(pytester, fake)
    result.assert_outcomes(passed=30)
    assert result.ret == 0
    summary = report(pytester)["suites"]["classify"]
    assert summary["cases"] == 30 and summary["score"] == 1.0
    assert summary["cost_usd"] > 0
    result.stdout.fnmatch_lines(["*tollgate*", "*classify*30*1.000*"])


def test_real_regression_fails_the_session_and_is_named(pytester, fake):
    make_project(pytester)
    assert run(pytester, fake, "--tollgate-save-baseline=main").ret == 0
    fake.set_behaviour(reply="something unrelated")  # every answer now misses the expected text
    result = run(pytester, fake, "--tollgate-baseline=main")
    assert result.ret == 1
    result.assert_outcomes(passed=30)  # cases are data; the gate, not each case, decides
    result.stdout.fnmatch_lines(["*classify*regression*"])
    verdicts = {row["suite"]: row["verdict"] for row in report(pytester)["comparison"]["suites"]}
    assert verdicts == {"classify": "regression"}


def test_noise_within_tolerance_passes(pytester, fake):
    make_project(pytester, max_drop=0.1)
    assert run(pytester, fake, "--tollgate-save-baseline=main").ret == 0
    fake.script({"reply": "off topic"})  # one case of thirty now fails: a 3% drop, inside max_drop=0.1
    result = run(pytester, fake, "--tollgate-baseline=main", "--tollgate-concurrency=1")
    assert result.ret == 0
    verdict = report(pytester)["comparison"]["suites"][0]["verdict"]
    assert verdict == "noise"


def test_improvement_passes(pytester, fake):
    make_project(pytester)
    fake.set_behaviour(reply="wrong")
    assert run(pytester, fake, "--tollgate-save-baseline=main").ret == 0
    fake.reset()
    result = run(pytester, fake, "--tollgate-baseline=main")
    assert result.ret == 0
    assert report(pytester)["comparison"]["suites"][0]["verdict"] == "improved"


def test_repeats_report_flaky_cases(pytester, fake):
    make_project(pytester, n_cases=5)
    fake.script({"reply": "flake"})
    result = run(pytester, fake, "--tollgate-repeat=3", "--tollgate-concurrency=1")
    result.assert_outcomes(passed=15)
    summary = report(pytester)["suites"]["classify"]
    assert summary["results"] == 15 and summary["cases"] == 5
    assert len(summary["flaky"]) == 1
    result.stdout.fnmatch_lines(["*flaky cases*"])


def test_record_then_replay_without_a_model(pytester, fake):
    make_project(pytester, n_cases=6)
    assert run(pytester, fake, "--tollgate-record=record", "--tollgate-save-baseline=live").ret == 0
    assert list((pytester.path / "recordings").glob("*.jsonl"))
    dead = "http://127.0.0.1:9/v1"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--tollgate-url={dead}", "--tollgate-record=replay",
                                "--tollgate-baseline=live")
    result.assert_outcomes(passed=6)
    data = report(pytester)
    assert data["suites"]["classify"]["replayed"] == 6
    assert data["comparison"]["suites"][0]["verdict"] == "replayed"  # never a silent pass on replay


def test_replay_miss_is_one_clear_line(pytester, fake):
    make_project(pytester, n_cases=2)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--tollgate-url=http://127.0.0.1:9/v1",
                                "--tollgate-record=replay")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*no recording for request*"])


def test_unreachable_sidecar_fails_each_case_with_one_line(pytester):
    make_project(pytester, n_cases=3)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--tollgate-url=http://127.0.0.1:9/v1")
    result.assert_outcomes(errors=3)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*model call failed: sidecar at http://127.0.0.1:9/v1 is unreachable*"])
    assert "Traceback" not in result.stdout.str()
    assert report(pytester)["suites"]["classify"]["errors"] == 3


def test_malformed_dataset_fails_collection_with_file_and_line(pytester, fake):
    make_project(pytester, n_cases=3)
    with (pytester.path / "datasets" / "cases.jsonl").open("a") as handle:
        handle.write("{not json\n")
    result = run(pytester, fake)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*cases.jsonl:4: *"])


def test_undefined_prompt_variable_is_reported_per_case(pytester, fake):
    make_project(pytester, n_cases=2)
    pytester.makefile(".prompt", **{"prompts/classify": PROMPT.replace("{{ text }}", "{{ missing_var }}")})
    result = run(pytester, fake)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*missing_var*"])


def test_xdist_runs_the_suite_across_workers(pytester, fake):
    make_project(pytester, n_cases=12)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--tollgate-url={fake.url}", "-n", "2")
    result.assert_outcomes(passed=12)
    assert result.ret == 0
    assert report(pytester)["suites"]["classify"]["results"] == 12


def test_plugin_is_inert_without_markers(pytester):
    pytester.makepyfile(test_plain="def test_one():\n    assert 1 + 1 == 2\n")
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / ".tollgate").exists()


def test_junit_xml_carries_compact_properties(pytester, fake):
    import xml.etree.ElementTree as ET

    make_project(pytester, n_cases=4)
    result = run(pytester, fake, "--junitxml=junit.xml")
    assert result.ret == 0
    tree = ET.parse(pytester.path / "junit.xml")
    case_props = [
        {p.get("name"): p.get("value") for p in case.iter("property")} for case in tree.iter("testcase")
    ]
    assert len(case_props) == 4
    assert all(props["tollgate.suite"] == "classify" and props["tollgate.passed"] == "True" for props in case_props)
    assert all("tollgate_case" not in props for props in case_props)  # the full row stays out of the XML
    suite_props = {p.get("name"): p.get("value") for p in tree.getroot().iter("property")}
    assert suite_props["tollgate.classify.score"] == "1.0"


def test_missing_baseline_fails_with_one_line(pytester, fake):
    make_project(pytester, n_cases=3)
    result = run(pytester, fake, "--tollgate-baseline=no-such-baseline")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*baseline 'no-such-baseline' not usable*", "*gate: FAILED*baseline not usable*"])


def test_bench_fixture_measures_the_endpoint(pytester, fake):
    fake.set_behaviour(ttft_s=0.03, output_tokens=4)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_latency="""
def test_latency_budget(bench):
    run = bench("fake-model", requests=5)
    (level,) = run.levels
    assert level.summary["ttft_p50"] > 0.0  # measured; how long depends on the machine, not asserted
    assert level.summary["error_rate"] == 0.0
""")
    result = run(pytester, fake, "--junitxml=junit.xml")
    result.assert_outcomes(passed=1)
    assert "tollgate.bench." in (pytester.path / "junit.xml").read_text()
