"""`tollgate release` through the real CLI entry point, against a SQLite database and a prompt directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from core.cli import main
from core.database import open_database
from core.releases import audit_log, release_status


@pytest.fixture
def cli(tmp_path: Path, sqlite_url: str, prompts):
    config = tmp_path / "tollgate.yaml"
    config.write_text(yaml.safe_dump({"database_url": sqlite_url,
                                      "releases": {"prompts_dir": str(prompts.root)}}))

    def run(*argv: str) -> int:
        return main(["release", "--config", str(config), "--actor", "tester", *argv])

    return run


@pytest.fixture
def cli_engine(sqlite_url: str):
    engine = open_database(sqlite_url)
    yield engine
    engine.dispose()


def test_promote_is_refused_with_one_line_then_forced_with_a_reason(cli, cli_engine, prompts, capsys):
    version = prompts.write()
    assert cli("promote", "greet") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "promotion refused by the gate" in err and "--force" in err
    assert cli("promote", "greet", "--force") == 2
    assert "needs a reason" in capsys.readouterr().err
    assert cli("promote", "greet", "--force", "--reason", "first release") == 0
    out = capsys.readouterr().out
    assert f"greet production: - -> {version}" in out and "FORCED past the gate" in out
    [entry] = audit_log(cli_engine)
    assert (entry.forced, entry.reason, entry.actor) == (True, "first release", "tester")


def test_gate_canary_status_rollback_and_audit(cli, cli_engine, prompts, add_run_sqlite, capsys):
    first = prompts.write("one")
    add_run_sqlite({"greet": first})
    assert cli("gate", "greet") == 0
    assert "gate: PASSED" in capsys.readouterr().out
    assert cli("promote", "greet") == 0
    second = prompts.write("two")
    assert cli("gate", "greet") == 1
    assert "FAIL run: no finished suite run used greet" in capsys.readouterr().out
    assert cli("canary", "greet", "--version", "current", "--weight", "0.1") == 0
    assert cli("shadow", "greet", "--model", "big-model") == 0
    capsys.readouterr()
    assert cli("status") == 0
    out = capsys.readouterr().out
    assert "production" in out and "canary" in out and "0.1" in out and "big-model" in out and second in out
    assert cli("status", "--json") == 0
    labels = {row["label"]: row for row in json.loads(capsys.readouterr().out)["labels"]}
    assert labels["canary"]["target"]["version"] == second and labels["canary"]["weight"] == 0.1
    assert cli("rollback", "greet") == 2
    assert "nothing to roll back to" in capsys.readouterr().err
    assert cli("shadow", "greet", "--clear") == 0
    assert cli("canary", "greet") == 2
    assert "--weight" in capsys.readouterr().err
    assert [s.label for s in release_status(cli_engine)] == ["production", "canary"]
    assert cli("audit", "greet") == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 5 and "clear" in out and "promote" in out


def test_experiments_and_variants(cli, prompts, capsys):
    prompts.write()
    assert cli("experiment", "start", "tone", "greet", "--arm", "control=current", "--arm", "big=:big-model@3") == 0
    assert "started tone on greet" in capsys.readouterr().out
    assert cli("experiment", "list") == 0
    assert "tone\tgreet\trunning\tcontrol@1, big@3" in capsys.readouterr().out
    assert cli("experiment", "start", "tone2", "greet", "--arm", "bad") == 2
    assert "expected NAME=VERSION" in capsys.readouterr().err
    assert cli("experiment", "stop", "tone") == 0
    capsys.readouterr()
    assert cli("variants", "--experiment", "tone", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []  # no traffic yet
