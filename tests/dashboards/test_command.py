"""`tollgate dashboard` and its Streamlit child: stopped together, killed together."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from dashboards.auth import hash_password
from tests.conftest import free_port
from tests.process_tree import command_line, descendants, kill_and_wait_for_tree, survivors
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def dashboard(sqlite_url, tmp_path) -> Iterator[tuple[subprocess.Popen[bytes], set[int]]]:
    """A running `tollgate dashboard` and the processes below it once Streamlit answers its health check."""
    config = tmp_path / "tollgate.yaml"
    config.write_text(yaml.safe_dump({
        "database_url": sqlite_url,
        "dashboard": {"users": {"lead": {"role": "lead", "password_hash": hash_password("lead-password")}}},
    }))  # fmt: skip
    port = free_port()
    tollgate = shutil.which("tollgate", path=str(Path(sys.executable).parent)) or "tollgate"
    process = subprocess.Popen(
        [tollgate, "dashboard", "--config", str(config), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "TOLLGATE_CONFIG": ""},
    )  # fmt: skip
    try:
        wait_until(lambda: _healthy(port) or process.poll() is not None, timeout=120, what="Streamlit")
        assert process.poll() is None, f"tollgate dashboard exited with {process.returncode}"
        tree = descendants(process.pid)
        assert any("streamlit run" in command_line(pid) for pid in tree), [command_line(p) for p in tree]
        yield process, tree
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_is_passed_on_and_waited_for(dashboard, signum):
    process, tree = dashboard
    process.send_signal(signum)
    assert process.wait(timeout=60) == 0
    assert survivors(tree) == {}  # Streamlit had exited before the command returned


def test_a_killed_dashboard_command_takes_streamlit_with_it(dashboard):
    process, tree = dashboard
    kill_and_wait_for_tree(process, tree)
