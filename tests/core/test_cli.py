"""The `tollgate` console command: lazy subcommands, one-line errors, no tracebacks."""

from __future__ import annotations

import subprocess
import sys

from core.cli import main


def test_help_lists_every_subcommand(capsys):
    try:
        main(["--help"])
    except SystemExit as exit_:
        assert exit_.code == 0
    out = capsys.readouterr().out
    for name in ("serve", "fake-upstream", "prompts", "compare", "baseline", "db"):
        assert name in out


def test_bad_config_is_one_line_on_stderr(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("sidecar:\n  port: 99999\n")
    result = subprocess.run([sys.executable, "-m", "core.cli", "serve", "--config", str(config)],
                            check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("tollgate serve: error: ") and "sidecar.port" in result.stderr
    assert "Traceback" not in result.stderr


def test_db_upgrade_creates_the_schema(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["db", "upgrade"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert (tmp_path / ".tollgate" / "tollgate.db").exists()
