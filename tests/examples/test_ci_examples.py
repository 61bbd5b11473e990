"""The CI examples in examples/ci: their structure, and their documented pytest command run for real.

The command each example runs is taken from the YAML file itself and run with pytester against a scratch
suite and the fake upstream (its URL given through PYTEST_ADDOPTS, as docs/ci.md describes), so an option
that does not exist, or an output path the artifacts do not upload, fails here.
"""

from __future__ import annotations

import json
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness.test_plugin import fake, make_project  # noqa: F401  # the fake upstream fixture

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "ci"


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((EXAMPLES / name).read_text())
    assert isinstance(data, dict)
    return data


def scripts(name: str) -> list[str]:
    """Every shell command the example runs."""
    data = load(name)
    if name.startswith("github"):
        return [step["run"] for step in data["jobs"]["gate"]["steps"] if "run" in step]
    job = data["tollgate-gate"]
    return [*job["script"], *job.get("after_script", [])]


def pytest_command(name: str) -> list[str]:
    (command,) = [shlex.split(line) for line in scripts(name) if line.startswith(".venv/bin/pytest")]
    return command


def option(command: list[str], name: str) -> str:
    (value,) = [arg.split("=", 1)[1] for arg in command if arg.startswith(f"{name}=")]
    return value


def make_targets() -> set[str]:
    lines = (ROOT / "Makefile").read_text().splitlines()
    return {line.split(":")[0] for line in lines if line and not line[0].isspace() and ":" in line
            and not line.startswith(("#", "."))}


def test_github_workflow_gates_pull_requests_caches_and_uploads():
    workflow = load("github-actions.yml")
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` key as true
    assert "pull_request" in triggers
    steps = workflow["jobs"]["gate"]["steps"]
    by_action = {step["uses"].split("@")[0]: step for step in steps if "uses" in step}
    assert by_action["actions/cache"]["with"]["path"] == ".venv"
    assert "hashFiles('pyproject.toml', 'constraints.txt')" in by_action["actions/cache"]["with"]["key"]
    upload = by_action["actions/upload-artifact"]
    assert upload["if"] == "always()" and upload["with"]["path"] == "reports/"
    command = pytest_command("github-actions.yml")
    for flag in ("--tollgate-report", "--junitxml", "--tollgate-markdown"):
        assert option(command, flag).startswith("reports/")  # uploaded with the artifact
    assert option(command, "--tollgate-baseline") == "suites/baselines/main.json"
    assert (ROOT / "suites" / "baselines" / "main.json").exists()
    comment = next(line for line in scripts("github-actions.yml") if line.startswith("gh pr comment"))
    assert f"--body-file {option(command, '--tollgate-markdown')}" in comment
    assert "make install" in scripts("github-actions.yml") and "install" in make_targets()


def test_gitlab_job_gates_merge_requests_caches_and_keeps_reports():
    job = load("gitlab-ci.yml")["tollgate-gate"]
    assert job["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'}]
    assert job["cache"]["paths"] == [".venv/"]
    assert job["cache"]["key"]["files"] == ["pyproject.toml", "constraints.txt"]
    command = pytest_command("gitlab-ci.yml")
    assert job["artifacts"]["when"] == "always" and job["artifacts"]["paths"] == ["reports/"]
    assert job["artifacts"]["reports"]["junit"] == option(command, "--junitxml")
    note = job["after_script"][0]
    assert f"body@{option(command, '--tollgate-markdown')}" in note
    assert "merge_requests/$CI_MERGE_REQUEST_IID/notes" in note
    assert "make install" in job["script"] and "install" in make_targets()
    assert pytest_command("gitlab-ci.yml") == pytest_command("github-actions.yml")  # one documented command


@pytest.mark.parametrize("example", ["github-actions.yml", "gitlab-ci.yml"])
def test_documented_command_runs_and_writes_the_summary(pytester, fake, monkeypatch, tmp_path, example):  # noqa: F811
    make_project(pytester, n_cases=6)
    (pytester.path / "suites").mkdir()
    (pytester.path / "test_suite.py").rename(pytester.path / "suites" / "test_suite.py")
    baseline = pytester.runpytest_subprocess(f"--tollgate-url={fake.url}", "suites/",
                                             "--tollgate-export=suites/baselines/main.json")
    assert baseline.ret == 0
    command = pytest_command(example)
    assert command[:2] == [".venv/bin/pytest", "suites/"]
    monkeypatch.setenv("PYTEST_ADDOPTS", f"--tollgate-url={fake.url}")
    step = tmp_path / "step_summary.md"
    if example.startswith("github"):
        monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    result = pytester.runpytest_subprocess(*command[1:])
    result.assert_outcomes(passed=6)
    assert result.ret == 0
    summary = (pytester.path / option(command, "--tollgate-markdown")).read_text()
    assert summary.startswith(
        "## :white_check_mark: tollgate gate: PASSED (1 suite, 6 cases, vs baseline suites/baselines/main.json)")
    assert "| classify | 6 | 1.000 | 1.000 | +0.000 |" in summary
    report = json.loads((pytester.path / option(command, "--tollgate-report")).read_text())
    assert report["comparison"]["suites"][0]["verdict"] == "pass"
    junit = ET.parse(pytester.path / option(command, "--junitxml"))
    assert len(list(junit.iter("testcase"))) == 6
    if example.startswith("github"):
        assert step.read_text() == summary
    else:
        assert not step.exists()
