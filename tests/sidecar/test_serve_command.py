"""`tollgate serve` binds its port before anything else: a port in use is one line and exit status 2."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
import yaml

from tests.process_tree import command_line, descendants, kill_and_wait_for_tree


def test_a_port_in_use_is_one_line_before_the_model_or_any_child_starts(tmp_path):
    data_dir = tmp_path / ".tollgate"
    config = tmp_path / "tollgate.yaml"
    # No upstream configured: the sidecar would start the embedded model, had it got that far.
    config.write_text(yaml.safe_dump({"data_dir": str(data_dir), "database_url": f"sqlite:///{tmp_path}/t.db"}))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "core.cli", "serve", "--config", str(config), "--port", str(port)],
            check=False, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == f"tollgate serve: error: port {port} on 127.0.0.1 is already in use\n"
    assert result.stdout == ""  # never "listening", never "ready"
    assert not (data_dir / "logs" / "embedded.log").exists()  # the model was never started


def test_an_address_that_is_not_local_is_one_line(tmp_path):
    config = tmp_path / "tollgate.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / ".tollgate"), "embedded": {"enabled": "never"}}))
    result = subprocess.run(
        [sys.executable, "-m", "core.cli", "serve", "--config", str(config), "--host", "192.0.2.1", "--port", "0"],
        check=False, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith("tollgate serve: error: cannot listen on 192.0.2.1 port 0: ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


@pytest.mark.embedded
@pytest.mark.slow
def test_a_killed_sidecar_takes_the_embedded_model_and_the_writer_with_it(tmp_path):
    config = tmp_path / "tollgate.yaml"
    config.write_text(yaml.safe_dump({
        "data_dir": str(tmp_path / ".tollgate"),
        "database_url": f"sqlite:///{tmp_path}/t.db",
        "embedded": {"threads": 1, "parallel": 1, "context": 1024},
    }))  # fmt: skip
    serve = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "serve", "--config", str(config), "--port", "0", "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert serve.stdout is not None
        assert serve.stdout.readline().startswith("tollgate sidecar listening on ")  # after the model is up
        tree = descendants(serve.pid)
        commands = [command_line(pid) for pid in tree]
        assert any("sidecar.embedded.server_main" in command for command in commands), commands
        kill_and_wait_for_tree(serve, tree)
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
        serve.stdout.close()
