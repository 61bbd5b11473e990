"""Reading the process tree from /proc (Linux): who descends from whom, and whether a process is gone."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.waiting import wait_until

PROC = Path("/proc")


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of `pid`, or None once it no longer exists."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may itself contain spaces or parentheses.
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def descendants(root: int) -> set[int]:
    """Every living process below `root` (children, grandchildren, ...), not `root` itself."""
    if not PROC.is_dir():
        pytest.skip("needs /proc (Linux)")
    children: dict[int, list[int]] = {}
    for entry in os.listdir(PROC):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None and stat[0] != "Z":
            children.setdefault(stat[1], []).append(int(entry))
    found: set[int] = set()
    pending = [root]
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found


def command_line(pid: int) -> str:
    """The process's arguments joined by spaces ("" once it is gone)."""
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def is_gone(pid: int) -> bool:
    """True once `pid` has exited (a zombie nobody has reaped yet counts as gone)."""
    stat = _stat(pid)
    return stat is None or stat[0] in ("Z", "X")


def survivors(pids: set[int]) -> dict[int, str]:
    """The processes of `pids` still running, with their command lines (for failure messages)."""
    return {pid: command_line(pid) for pid in pids if not is_gone(pid)}


def kill_and_wait_for_tree(process: subprocess.Popen[Any], tree: set[int], timeout: float = 60.0) -> None:
    """SIGKILL `process` (no cleanup runs in it) and wait until every process of `tree` has exited."""
    process.send_signal(signal.SIGKILL)
    process.wait()
    wait_until(lambda: not survivors(tree), timeout=timeout, what=f"its descendants to exit: {survivors(tree)}")
