"""Provenance: git commit, branch and dirty flag, and the machine, with or without a repository."""

from __future__ import annotations

import re
import socket
import subprocess

import pytest

from harness.provenance import collect_provenance, current_branch

CI_VARIABLES = ("GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME", "BRANCH_NAME", "GIT_BRANCH")


@pytest.fixture(autouse=True)
def no_ci_branch(monkeypatch):
    for name in CI_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def git(repo, *args: str) -> str:
    command = ["git", "-c", "user.email=t@example.invalid", "-c", "user.name=t", *args]
    return subprocess.run(command, cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    git(tmp_path, "init", "-q", "-b", "feature/gate")
    (tmp_path / "prompt.txt").write_text("v1\n")
    git(tmp_path, "add", "prompt.txt")
    git(tmp_path, "commit", "-q", "-m", "first")
    return tmp_path


def test_clean_repository(repo):
    facts = collect_provenance(repo)
    assert facts["git_commit"] == git(repo, "rev-parse", "HEAD")
    assert facts["git_branch"] == "feature/gate"
    assert facts["git_dirty"] is False
    assert facts["started_at"].tzinfo is not None


def test_modified_tracked_file_is_dirty(repo):
    (repo / "prompt.txt").write_text("v2\n")
    assert collect_provenance(repo)["git_dirty"] is True


def test_detached_head_takes_the_branch_from_ci(repo, monkeypatch):
    git(repo, "checkout", "-q", "--detach")
    assert current_branch(repo) is None
    monkeypatch.setenv("GITHUB_REF_NAME", "release-2")
    assert current_branch(repo) == "release-2"


def test_outside_a_repository_git_fields_are_none(tmp_path):
    facts = collect_provenance(tmp_path)
    assert (facts["git_commit"], facts["git_branch"], facts["git_dirty"]) == (None, None, None)


def test_machine_hides_the_hostname():
    machine = collect_provenance()["machine"]
    assert re.fullmatch(r"[0-9a-f]{12}", machine["hostname_hash"])
    assert socket.gethostname() not in str(machine)
    assert machine["cpu_count"] >= 1 and machine["python"].count(".") == 2
