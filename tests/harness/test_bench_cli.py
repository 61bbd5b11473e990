"""`tollgate bench` end to end through `core.cli.main`: output, files, baselines and exit codes."""

from __future__ import annotations

import csv

import pytest

import core.cli
from harness.bench import read_json
from sidecar.fake_upstream import FakeBehaviour, start_fake_upstream_thread
from tests.conftest import free_port


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A project folder with no tollgate.yaml; `bench` is reachable whether or not it is installed yet."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TOLLGATE_CONFIG", raising=False)
    monkeypatch.delenv("TOLLGATE_DATA_DIR", raising=False)
    commands = core.cli._commands()
    monkeypatch.setattr(core.cli, "_commands", lambda: {**commands, "bench": "harness.commands.bench"})
    return tmp_path


@pytest.fixture(scope="module")
def fake():
    with start_fake_upstream_thread(FakeBehaviour(ttft_s=0.05, inter_token_s=0.01, output_tokens=10)) as f:
        yield f


def bench(fake, *argv: str) -> int:
    return core.cli.main(["bench", "--url", fake.url, "--model", "fake-model", "--no-progress", *argv])


def test_table_files_and_history(workdir, fake, capsys):
    assert bench(fake, "--requests", "3", "--json", "out.json", "--csv", "out.csv", "--slo", "ttft_ms=10s") == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith(f"tollgate bench  {fake.url}  model fake-model  mode sequential")
    assert lines[2].startswith("[sequential]  3 requests, 0 errors (0.0%)") and "goodput 100.0%" in lines[2]
    assert lines[3].split() == ["ms", "mean", "p50", "p90", "p95", "p99"]
    ttft_row = lines[4].split()
    assert ttft_row[0] == "TTFT" and float(ttft_row[2]) > 0.0
    run = read_json(workdir / "out.json")
    assert len(run.records) == 3 and run.meta["slos"] == {"ttft_ms": 10000.0}
    assert run.meta["workload"]["max_tokens"] == 128 and run.meta["provenance"]["git_commit"] is None
    with (workdir / "out.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["tokens_out"] for row in rows] == ["10", "10", "10"]
    stored = list((workdir / ".tollgate" / "bench").glob("*.json"))
    assert len(stored) == 1 and f"stored: {stored[0].relative_to(workdir)}" in err


def test_regression_against_a_saved_baseline_exits_one(workdir, fake, capsys):
    assert bench(fake, "--requests", "3", "--save", "fast") == 0
    assert (workdir / ".tollgate" / "bench" / "baselines" / "fast.json").is_file()
    capsys.readouterr()
    # A generous rule holds against the same server; a slower first token breaks a tight one.
    assert bench(fake, "--requests", "3", "--compare", "fast", "--fail-on-regression", "ttft_p50:+1s") == 0
    assert "ok" in capsys.readouterr().out.splitlines()[-1]
    fake.set_behaviour(ttft_s=0.3)
    try:
        code = bench(fake, "--requests", "3", "--compare", "fast",
                     "--fail-on-regression", "ttft_p50:+100%,goodput:-5%")
    finally:
        fake.set_behaviour(ttft_s=0.05)
    assert code == 1
    tail = capsys.readouterr().out.splitlines()[-3:]
    assert tail[0] == "compared with fast:"
    assert "ttft_p50:+100%" in tail[1] and tail[1].endswith("REGRESSION")
    assert "goodput:-5%" in tail[2] and tail[2].endswith("ok")


def test_compare_without_rules_reports_and_passes(workdir, fake, capsys):
    assert bench(fake, "--requests", "2", "--json", "base.json", "--no-store") == 0
    capsys.readouterr()
    assert bench(fake, "--requests", "2", "--compare", "base.json", "--no-store") == 0
    out = capsys.readouterr().out
    assert "compared with base.json:" in out and "ttft_p99" in out and "REGRESSION" not in out
    assert not (workdir / ".tollgate" / "bench").exists()


@pytest.mark.parametrize("argv, message", [
    (["--fail-on-regression", "ttft_p99:+10"], "needs --compare"),
    (["--compare", "x", "--fail-on-regression", "ttft_p99:10 percent"], "bad regression rule"),
    (["--compare", "nothing-saved"], "no bench baseline named 'nothing-saved'"),
    (["--mode", "rate"], "rate mode needs --rate"),
    (["--mode", "sweep", "--concurrency", "1,x"], "--concurrency must be integers"),
    (["--slo", "ttft=3"], "bad SLO"),
    (["--dataset", "missing.txt"], "cannot read prompts"),
])
def test_bad_input_is_one_line_and_exit_two(workdir, fake, capsys, argv, message):
    sent_before = fake.stats()["requests_total"]
    assert bench(fake, *argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("tollgate bench: error: ") and message in err and err.count("\n") == 1
    assert fake.stats()["requests_total"] == sent_before  # input is checked before the first request


def test_every_request_failing_exits_two(workdir, capsys):
    code = core.cli.main(["bench", "--url", f"http://127.0.0.1:{free_port()}/v1", "--model", "m",
                          "--requests", "2", "--no-progress"])
    assert code == 2
    assert "every request failed (2 sent); first error: ClientConnectorError" in capsys.readouterr().err


def test_rate_and_sweep_from_the_command_line(workdir, fake, capsys):
    assert bench(fake, "--mode", "rate", "--rate", "30", "--duration", "0.5", "--json", "rate.json") == 0
    run = read_json(workdir / "rate.json")
    assert [level.label for level in run.levels] == ["rate=30"] and run.meta["plan"]["rate"] == 30.0
    assert bench(fake, "--mode", "sweep", "--concurrency", "1,2", "--requests", "2", "--json", "sweep.json") == 0
    sweep = read_json(workdir / "sweep.json")
    assert [(level.label, len(level.records)) for level in sweep.levels] == [("c=1", 2), ("c=2", 2)]
