"""`core.children`: a child started through it dies with its parent, however the parent dies.

Each test runs a small parent program in its own process, waits until it has started its children, reads
the process tree below it from /proc, SIGKILLs the parent and waits for every descendant to be gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.process_tree import descendants, is_gone, kill_and_wait_for_tree
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]

SLEEPER = """
import os, sys, time
from pathlib import Path
Path(sys.argv[1] + ".new").write_text(str(os.getpid()))
os.replace(sys.argv[1] + ".new", sys.argv[1])  # whole, so a reader never sees it half written
time.sleep(600)  # the scenario: a child that would run for ten minutes
"""

# Starts children the way the argument says, then reports "started" and waits to be killed.
PARENT = """
import sys, threading, time
from pathlib import Path
from core.children import OnParentDeath, popen, popen_module

mode, folder = sys.argv[1], Path(sys.argv[2])

def start():
    if mode == "exec":
        popen(["sleep", "600"])
    elif mode == "grandchild":
        popen_module("parent_program", ["main", str(folder / "inner")])
    elif mode == "owner":
        popen_module("sleeper", [str(folder / "child.pid")], on_death=OnParentDeath(owner_pid=int(sys.argv[3])))
    else:
        popen_module("sleeper", [str(folder / "child.pid")])

if mode == "thread":
    # The thread ends at once: a death signal tied to it would kill the child now.
    spawner = threading.Thread(target=start)
    spawner.start()
    spawner.join()
else:
    start()
if mode in ("main", "thread", "owner"):
    while not (folder / "child.pid").exists():
        time.sleep(0.01)
elif mode == "grandchild":
    while not (folder / "inner" / "started").exists():
        time.sleep(0.01)
(folder / "started").write_text("")
time.sleep(600)  # the scenario: a parent that would run for ten minutes, killed by the test
"""


@pytest.fixture
def programs(tmp_path: Path) -> Path:
    (tmp_path / "sleeper.py").write_text(SLEEPER)
    (tmp_path / "parent_program.py").write_text(PARENT)
    return tmp_path


def start_parent(programs: Path, mode: str, *extra: str) -> tuple[subprocess.Popen[bytes], Path]:
    folder = programs / mode
    folder.mkdir()
    (folder / "inner").mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(programs), str(ROOT)])}
    parent = subprocess.Popen([sys.executable, "-m", "parent_program", mode, str(folder), *extra], env=env)
    wait_until(lambda: (folder / "started").exists() or parent.poll() is not None, what="the parent to start")
    assert parent.poll() is None, f"the parent exited with {parent.returncode}"
    return parent, folder


@pytest.mark.parametrize("mode", ["main", "thread", "exec", "grandchild"])
def test_every_descendant_dies_with_a_killed_parent(programs, mode):
    parent, folder = start_parent(programs, mode)
    try:
        tree = descendants(parent.pid)
        assert len(tree) == (2 if mode == "grandchild" else 1), tree
        if mode in ("main", "thread"):
            assert not is_gone(int((folder / "child.pid").read_text())), "the child died before its parent"
        kill_and_wait_for_tree(parent, tree)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_a_child_owned_by_another_process_dies_with_that_process(programs):
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # scenario: an owner
    parent, folder = start_parent(programs, "owner", str(owner.pid))
    try:
        child = int((folder / "child.pid").read_text())
        assert child in descendants(parent.pid)
        owner.kill()
        owner.wait()
        wait_until(lambda: is_gone(child), what="the owned child to exit")
    finally:
        for process in (parent, owner):
            if process.poll() is None:
                process.kill()
                process.wait()


FORKING_PARENT = """
import os, sys, threading, time
from pathlib import Path
from core.children import popen_module

folder = Path(sys.argv[1])
# From a thread, so no death signal is armed: only the pipe tells the child its parent died.
spawner = threading.Thread(target=popen_module, args=("sleeper", [str(folder / "child.pid")]))
spawner.start()
spawner.join()
if os.fork() == 0:
    time.sleep(600)  # the scenario: a fork (a worker, say) that lives on after its parent died
    os._exit(0)
while not (folder / "child.pid").exists():
    time.sleep(0.01)
(folder / "started").write_text("")
time.sleep(600)
"""


def test_a_fork_of_the_parent_does_not_keep_its_children_alive(programs):
    (programs / "forking_parent.py").write_text(FORKING_PARENT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(programs), str(ROOT)])}
    parent = subprocess.Popen([sys.executable, "-m", "forking_parent", str(programs)], env=env)
    try:
        wait_until(lambda: (programs / "started").exists() or parent.poll() is not None, what="the parent")
        tree = descendants(parent.pid)
        child = int((programs / "child.pid").read_text())
        fork = next(pid for pid in tree if pid != child)
        parent.kill()
        parent.wait()
        wait_until(lambda: is_gone(child), what="the child to exit while the fork still runs")
        assert not is_gone(fork)
    finally:
        for pid in descendants(parent.pid) | ({fork} if "fork" in locals() else set()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if parent.poll() is None:
            parent.kill()
            parent.wait()
