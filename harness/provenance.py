"""Where a run came from: git commit, branch and dirty flag, machine, Python and harness version."""

from __future__ import annotations

import hashlib
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import core
from core.tables import utc_now

# CI systems check out a detached HEAD; these variables name the branch being built. They describe the
# environment the run happened in (like the hostname), they are not Tollgate configuration.
_CI_BRANCH_VARIABLES = ("GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME", "BRANCH_NAME", "GIT_BRANCH")
_GIT_TIMEOUT_S = 5.0


def collect_provenance(cwd: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Facts saved with every run so a result can be traced back and compared like for like.

    Keys: git_commit, git_branch, git_dirty (None when not in a git repository or git is missing),
    harness_version, machine {python, implementation, platform, cpu_count, hostname_hash}, started_at (UTC).
    """
    where = Path(cwd) if cwd is not None else Path.cwd()
    commit = _git(where, "rev-parse", "HEAD")
    status = _git(where, "status", "--porcelain", "--untracked-files=no") if commit is not None else None
    return {
        "git_commit": commit,
        "git_branch": current_branch(where) if commit is not None else None,
        "git_dirty": None if status is None else bool(status),
        "harness_version": core.__version__,
        "machine": describe_machine(),
        "started_at": utc_now(),
    }


def current_branch(cwd: str | os.PathLike[str] | None = None) -> str | None:
    """The checked-out branch; on a detached HEAD (as in CI) the branch the CI system names, else None."""
    branch = _git(Path(cwd) if cwd is not None else Path.cwd(), "rev-parse", "--abbrev-ref", "HEAD")
    if branch and branch != "HEAD":
        return branch
    for name in _CI_BRANCH_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            return value.removeprefix("origin/")
    return None


def describe_machine() -> dict[str, Any]:
    """The machine, without identifying it: the hostname is kept only as a short hash."""
    return {
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "hostname_hash": hashlib.sha256(socket.gethostname().encode()).hexdigest()[:12],
    }


def _git(cwd: Path, *args: str) -> str | None:
    """Output of a git command, or None when git is missing, times out or this is not a repository."""
    try:
        completed = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=_GIT_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if completed.returncode != 0:
        return None
    return completed.stdout.strip()
