"""`tollgate compare` and `tollgate baseline`: output, files and exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from core.cli import main
from core.database import open_database
from harness.store import RunStore


@pytest.fixture
def workdir(tmp_path, monkeypatch, sqlite_url):
    """A project folder with no tollgate.yaml and the database at `sqlite_url`."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TOLLGATE_CONFIG", raising=False)
    monkeypatch.setenv("TOLLGATE_DATABASE_URL", sqlite_url)
    return tmp_path


@pytest.fixture
def store(sqlite_url):
    engine = open_database(sqlite_url)
    yield RunStore(engine)
    engine.dispose()


def record_run(store: RunStore, passes: int, total: int = 50, *, label: str, minutes: int = 0) -> str:
    provenance = {"git_branch": "main", "harness_version": "0.1.0",
                  "started_at": datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)}
    run_id = store.start_run(provenance, label=label)
    store.add_case_results(run_id, [
        {"suite": "qa", "case_id": f"c{i}", "passed": i < passes,
         "scores": [{"name": "exact", "value": float(i < passes), "passed": i < passes}]}
        for i in range(total)
    ])
    store.finish_run(run_id, exit_status=0)
    return run_id


def test_pass_exits_zero_and_prints_the_table(workdir, store, capsys):
    record_run(store, 40, label="before")
    record_run(store, 40, label="after", minutes=1)
    assert main(["compare", "after", "before", "--fail-on-regression"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].split()[:3] == ["suite", "cases", "score"]
    assert out.splitlines()[2].split()[0] == "qa" and out.splitlines()[2].endswith("pass")


def test_regression_exits_one_only_when_asked(workdir, store, capsys):
    record_run(store, 45, label="before")
    record_run(store, 30, label="after", minutes=1)
    assert main(["compare", "after", "before"]) == 0
    assert "regression" in capsys.readouterr().out
    assert main(["compare", "after", "before", "--fail-on-regression"]) == 1
    capsys.readouterr()
    # a looser rule turns the same drop into tolerated noise
    assert main(["compare", "after", "before", "--fail-on-regression", "--max-drop", "0.5"]) == 0
    assert capsys.readouterr().out.splitlines()[2].endswith("noise")


def test_bad_reference_exits_two_with_one_line(workdir, store, capsys):
    store.save_baseline("main", record_run(store, 40, label="before"))
    assert main(["compare", "latest", "nope", "--fail-on-regression"]) == 2
    err = capsys.readouterr().err
    assert err == "tollgate compare: error: no run or baseline named 'nope' (baselines: main)\n"
    assert main(["compare", "latest", "main", "--max-drop", "5"]) == 2
    assert "max_drop must be within 0..1" in capsys.readouterr().err


def test_json_files_compare_without_a_database(workdir, store, capsys, monkeypatch):
    before = record_run(store, 45, label="before")
    after = record_run(store, 30, label="after", minutes=1)
    store.export_run_file(before, workdir / "baselines" / "main.json")
    store.export_run_file(after, workdir / "current.json")
    monkeypatch.delenv("TOLLGATE_DATABASE_URL")  # the default database would live in ./.tollgate
    code = main(["compare", "current.json", "baselines/main.json", "--fail-on-regression", "--json", "out.json"])
    assert code == 1
    assert not (workdir / ".tollgate").exists()
    report = orjson.loads((workdir / "out.json").read_bytes())
    assert report["failed"] is True and report["suites"][0]["verdict"] == "regression"
    assert report["baseline"] == f"{before[:8]} (before) from baselines/main.json"


def test_baseline_save_list_export_import(workdir, store, capsys, tmp_path, monkeypatch):
    record_run(store, 40, label="golden")
    assert main(["baseline", "save", "main", "--note", "release 1"]) == 0
    assert main(["baseline", "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[-1].split()[:4] == ["main", store.resolve("golden")[:8], "golden", "main"]
    assert listing[-1].endswith("release 1")
    assert main(["baseline", "export", "main", "--out", "suites/baselines/main.json", "--slim"]) == 0
    exported = orjson.loads((workdir / "suites/baselines/main.json").read_bytes())
    assert exported["baseline"] == "main" and len(exported["cases"]) == 50

    fresh_url = f"sqlite:///{(tmp_path / 'fresh.db').as_posix()}"
    monkeypatch.setenv("TOLLGATE_DATABASE_URL", fresh_url)
    assert main(["baseline", "import", "suites/baselines/main.json"]) == 0
    assert "imported as baseline 'main'" in capsys.readouterr().out
    fresh = RunStore(open_database(fresh_url))
    try:
        assert fresh.resolve("main") == store.resolve("golden")
        record_run(fresh, 40, label="pr", minutes=5)
    finally:
        fresh.engine.dispose()
    assert main(["compare", "pr", "main", "--fail-on-regression"]) == 0
    assert main(["baseline", "save", "nightly", "--run", "nope"]) == 2


def test_console_command_exit_codes(workdir, store):
    store.export_run_file(record_run(store, 45, label="before"), workdir / "before.json")
    store.export_run_file(record_run(store, 20, label="after", minutes=1), workdir / "after.json")
    tollgate = Path(sys.executable).with_name("tollgate")
    env = {key: value for key, value in os.environ.items() if key != "TOLLGATE_DATABASE_URL"}
    failed = subprocess.run([str(tollgate), "compare", "after.json", "before.json", "--fail-on-regression"],
                            cwd=workdir, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert failed.returncode == 1, failed.stderr
    assert "regression" in failed.stdout
    missing = subprocess.run([str(tollgate), "compare", "after.json", "gone.json"],
                             cwd=workdir, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == ["tollgate compare: error: gone.json: run file not found"]
