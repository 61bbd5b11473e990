"""The sidecar a pytest session starts dies with that session, even when CI SIGKILLs pytest."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import orjson
import pytest
import yaml

from sidecar.fake_upstream import FakeBehaviour, FakeUpstreamThread, start_fake_upstream_thread
from tests.process_tree import command_line, descendants, is_gone, kill_and_wait_for_tree
from tests.waiting import wait_until

SUITE = """
import os, time
from pathlib import Path

def test_holds_the_session_open(llm):
    llm({"model": "fake-model", "messages": [{"role": "user", "content": "hello"}]})
    Path(os.environ["TOLLGATE_TEST_MARKER"]).write_text("")
    time.sleep(600)  # the scenario: a long test, cut short by the CI timeout's SIGKILL
"""


@pytest.fixture
def fake() -> Iterator[FakeUpstreamThread]:
    with start_fake_upstream_thread(FakeBehaviour()) as handle:
        yield handle


XDIST_SUITE = """
import pytest

@pytest.mark.parametrize("index", range(6))
def test_call(llm, index):
    assert llm({"model": "fake-model", "messages": [{"role": "user", "content": f"hello {index}"}]}).text
"""


def write_config(tmp_path, fake) -> None:
    (tmp_path / "tollgate.yaml").write_text(yaml.safe_dump({
        "data_dir": str(tmp_path / ".tollgate"),
        "database_url": f"sqlite:///{tmp_path}/tollgate.db",
        "models": {"fake-model": {"deployments": [{"base_url": fake.url}]}},
        "prices": {"fake-model": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}},
        "embedded": {"enabled": "never"},
    }))  # fmt: skip


def test_a_killed_pytest_leaves_no_sidecar_behind(tmp_path, fake):
    write_config(tmp_path, fake)
    (tmp_path / "test_hold.py").write_text(SUITE)
    marker = tmp_path / "called"
    env = {**os.environ, "TOLLGATE_TEST_MARKER": str(marker), "TOLLGATE_CONFIG": ""}
    pytest_run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_hold.py"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        wait_until(lambda: marker.exists() or pytest_run.poll() is not None, timeout=180, what="the first call")
        assert pytest_run.poll() is None, f"pytest exited with {pytest_run.returncode}"
        tree = descendants(pytest_run.pid)
        commands = [command_line(pid) for pid in tree]
        assert any("core.cli serve" in command for command in commands), commands
        assert any("sidecar.traffic.child" in command for command in commands), commands  # a grandchild
        kill_and_wait_for_tree(pytest_run, tree)
    finally:
        if pytest_run.poll() is None:
            pytest_run.kill()
            pytest_run.wait()


def test_an_xdist_sessions_sidecar_ends_with_the_controller(tmp_path, fake):
    # A worker starts the shared sidecar and the controller owns it: it serves both workers, and it does not
    # outlive the controller (here the controller does not stop it itself: the tests record no cases).
    write_config(tmp_path, fake)
    (tmp_path / "test_calls.py").write_text(XDIST_SUITE)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", "test_calls.py"],
        cwd=tmp_path, env={**os.environ, "TOLLGATE_CONFIG": ""}, capture_output=True, text=True, timeout=600,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:]
    assert "6 passed" in result.stdout
    started = list((tmp_path / ".tollgate" / "run").glob("sidecar-*.json"))
    pids = [int(orjson.loads(path.read_bytes())["pid"]) for path in started]
    assert len(pids) <= 1  # none if the controller stopped it (and removed its file) itself
    assert "tollgate sidecar listening on" in (tmp_path / ".tollgate" / "logs" / "sidecar.log").read_text()
    wait_until(lambda: all(is_gone(pid) for pid in pids), what=f"the session's sidecar {pids} to exit")
