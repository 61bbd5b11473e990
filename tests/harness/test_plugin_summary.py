"""What a session tells its reader: failing cases with the model's answers, the gate's last line, and the
markdown summary for pull requests and GitHub's job summary. Outcomes, exit codes and the text are checked."""

from __future__ import annotations

import pytest

from tests.harness.test_plugin import fake, make_project, run  # noqa: F401  # the fake upstream fixture

pytest_plugins = ["pytester"]


def last_lines(result: pytest.RunResult, n: int = 2) -> list[str]:
    return [line for line in result.outlines if line.strip()][-n:]


def regressed(pytester: pytest.Pytester, fake, *args: str) -> pytest.RunResult:  # noqa: F811
    make_project(pytester, n_cases=10)
    assert run(pytester, fake, "--tollgate-save-baseline=main").ret == 0
    fake.set_behaviour(reply="something unrelated")  # every answer now misses the expected text
    return run(pytester, fake, "--tollgate-baseline=main", *args)


def test_passing_session_ends_with_the_gate_line(pytester, fake):  # noqa: F811
    make_project(pytester, n_cases=4)
    result = run(pytester, fake)
    result.assert_outcomes(passed=4)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*cases are data: pytest's 'passed' means a case ran*"])
    before, last = last_lines(result)
    assert "4 passed" in before
    assert last == "tollgate gate: PASSED (1 suite, 4 cases, no baseline compared)"


def test_regression_shows_failing_cases_and_ends_with_the_reason(pytester, fake):  # noqa: F811
    result = regressed(pytester, fake, "--tollgate-show-failures=2")
    result.assert_outcomes(passed=10)  # cases are data: each ran
    assert result.ret == 1
    result.stdout.fnmatch_lines([
        "newly failing cases (first 2 of 10; --tollgate-show-failures N shows more):",
        "  classify/c00",
        "    input:    {\"text\":\"message 0\"}",
        "    expected: message 0",
        "    answer:   something unrelated",
        "  classify/c01",
    ])
    assert "classify/c02" not in result.stdout.str()
    before, last = last_lines(result)
    assert "10 passed" in before
    assert last == "tollgate gate: FAILED (suite classify: score 0.000 < baseline 1.000, p<0.001)"


def test_show_failures_zero_shows_none_and_no_gate_still_says_so(pytester, fake):  # noqa: F811
    result = regressed(pytester, fake, "--tollgate-show-failures=0", "--tollgate-no-gate")
    assert result.ret == 0
    assert "newly failing cases" not in result.stdout.str()
    assert last_lines(result, 1)[0].startswith("tollgate gate: WOULD FAIL (suite classify: score 0.000 < baseline")


def test_markdown_summary_file_and_github_step_summary(pytester, fake, monkeypatch, tmp_path):  # noqa: F811
    make_project(pytester, n_cases=10)
    assert run(pytester, fake, "--tollgate-save-baseline=main").ret == 0
    fake.set_behaviour(reply="something | unrelated")
    step = tmp_path / "step_summary.md"
    step.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    result = run(pytester, fake, "--tollgate-baseline=main", "--tollgate-markdown=out/gate.md")
    assert result.ret == 1
    text = (pytester.path / "out" / "gate.md").read_text()
    lines = text.splitlines()
    assert lines[0] == ("## :x: tollgate gate: FAILED (suite classify: score 0.000 < baseline 1.000, p<0.001)")
    assert "| suite | cases | score | baseline | delta | 95% CI | p | verdict |" in lines
    row = next(line for line in lines if line.startswith("| classify "))
    assert row.startswith("| classify | 10 | 0.000 | 1.000 | -1.000 | [") and row.endswith("| <0.001 | **regression** |")
    assert "### Newly failing cases (first 5 of 10)" in lines
    assert "- **classify/c00**" in lines
    assert "  - expected: `` message 0 ``" in lines
    assert "  - answer: `` something | unrelated ``" in lines
    usage = next(line for line in lines if line.startswith("**Cost:**"))
    assert usage.startswith("**Cost:** $0.0") and usage.endswith("**Judges:** 0 judge calls.")
    assert step.read_text() == "earlier step\n" + text  # appended, as GitHub expects


def test_step_summary_alone_is_written_without_the_option(pytester, fake, monkeypatch, tmp_path):  # noqa: F811
    make_project(pytester, n_cases=3)
    step = tmp_path / "step_summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    result = run(pytester, fake)
    assert result.ret == 0
    text = step.read_text()
    assert text.startswith("## :white_check_mark: tollgate gate: PASSED (1 suite, 3 cases, no baseline compared)")
    assert "| classify | 3 | 1.000 | - | - | [" in text
