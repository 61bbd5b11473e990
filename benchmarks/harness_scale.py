"""Harness scale: N dataset cases through `pytest` with the Tollgate plugin, recorded with scores.

One run generates a temporary project (a prompt file, an N-row JSONL dataset, a suite with three cheap scorers
and a tollgate.yaml pricing the fake model so litellm is never imported), starts the project's fake upstream
with zero latency, and runs `pytest` on the project as a child process for each variant:

  tollgate, direct    the plugin calling the fake upstream directly (`--tollgate-url=<fake>`): the harness path;
  tollgate, sidecar   the plugin calling a real sidecar (`tollgate serve`, traffic log on) in front of the fake;
  pytest floor        the same N parametrised tests without the plugin and without a model call;
  pytest + httpx      the plugin disabled, one synchronous httpx call per test (the plain-pytest peer).

For each it measures wall time, CPU time and the pytest process's peak RSS (`wait4` rusage), and for the Tollgate
variants checks that the run recorded N case results, each with its scores, in the run store and the JSON
report. Prints a table beside the goals and writes benchmarks/results/harness-scale-<UTC date>.json.

    python benchmarks/harness_scale.py [--cases 10000] [--concurrency 16] [--rounds 1] [--no-sidecar]
                                       [--no-peers] [--against DIR] [--keep] [--pytest-arg ARG ...]

`--against DIR` adds the direct variant run with the `core`/`harness`/`sidecar` packages of another checkout
(e.g. `git archive <commit> core harness sidecar | tar -x -C DIR`), alternating with this one, for before/after
figures from one run. Wall time is noisy on a shared machine; CPU time (user + system) of the pytest process
is the steadier figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from overhead_processes import Child, child_env, start_child  # the overhead benchmark's process helpers

HERE = Path(__file__).resolve().parent
GOAL_S, GOAL_MIB = 30.0, 300.0  # the goal; DESIGN.md's stretch goal is 10 s / 200 MiB
STRETCH_S, STRETCH_MIB = 10.0, 200.0
MODEL = "fake-model"
PRICE = {"input_per_mtok": 0.15, "output_per_mtok": 0.6}

PROMPT = """---
name: ticket_label
description: label a support ticket (benchmark prompt)
model: fake-model
parameters: {temperature: 0, max_tokens: 64, response_format: {type: json_object}}
---
[SYSTEM]
You label support tickets. Answer with a JSON object.
[INSTRUCTION]
Ticket {{ ticket_id }} from {{ customer }}: {{ text }}
"""

SUITE = """
import pytest
from harness import scorers


@pytest.mark.dataset("datasets/tickets.jsonl")
@pytest.mark.prompt("ticket_label")
@pytest.mark.tollgate_suite("scale", max_drop=0.02)
def test_ticket_label(case, result, score):
    score(scorers.valid_json(), scorers.contains(case.expected), scorers.latency_budget(total_ms=10_000))
"""

PLAIN = """
import json

import httpx
import pytest

CASES = [json.loads(line) for line in open("datasets/tickets.jsonl")]
URL = {url!r}
client = httpx.Client(base_url=URL, timeout=30.0) if URL else None


@pytest.mark.parametrize("row", CASES, ids=[row["id"] for row in CASES])
def test_plain(row):
    if client is None:  # the pytest floor: the tests alone
        assert row["expected"]
        return
    body = {{"model": "fake-model", "max_tokens": 64, "response_format": {{"type": "json_object"}},
            "messages": [{{"role": "user", "content": f"Ticket {{row['inputs']['ticket_id']}}: {{row['inputs']['text']}}"}}]}}
    text = client.post("/chat/completions", json=body).json()["choices"][0]["message"]["content"]
    json.loads(text)
    assert row["expected"] in text
"""


# -- the project ---------------------------------------------------------------------------------------


def write_project(root: Path, cases: int, *, plain_url: str | None = None) -> None:
    """A Tollgate project with `cases` dataset rows; `plain_url` writes the plugin-free peer suite instead."""
    (root / "prompts").mkdir(parents=True, exist_ok=True)
    (root / "datasets").mkdir(exist_ok=True)
    (root / "prompts" / "ticket_label.prompt").write_text(PROMPT)
    with (root / "datasets" / "tickets.jsonl").open("w") as handle:
        for i in range(cases):
            row = {
                "id": f"t{i:05d}",
                "inputs": {
                    "ticket_id": i,
                    "customer": f"customer-{i % 97}",
                    "text": f"order ref{i} arrived damaged, please send a replacement",
                },
                "expected": f"ref{i}",
                "tags": ["bench"],
            }
            handle.write(json.dumps(row) + "\n")
    if plain_url is None:
        (root / "test_scale.py").write_text(SUITE)
    else:
        (root / "test_plain.py").write_text(PLAIN.format(url=plain_url or ""))
    (root / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    config = {"prices": {MODEL: PRICE}}
    (root / "tollgate.yaml").write_text(json.dumps(config))  # JSON is YAML


# -- child servers -------------------------------------------------------------------------------------


def start_fake(scratch: Path) -> Child:
    command = [
        sys.executable,
        "-m",
        "core.cli",
        "fake-upstream",
        "--port",
        "0",
        "--ttft-ms",
        "0",
        "--inter-token-ms",
        "0",
    ]
    return start_child("fake", command, re.compile(r"(http://\S+/v1)"), scratch / "fake.log")


def start_sidecar(scratch: Path, fake_url: str) -> tuple[Child, Path]:
    """A sidecar with its traffic log on, routing the fake model to the fake upstream; returns its data dir."""
    folder = scratch / "sidecar"
    folder.mkdir()
    config = {
        "data_dir": str(folder / ".tollgate"),
        "models": {MODEL: {"deployments": [{"base_url": fake_url}], "price": PRICE}},
        "traffic": {"enabled": True},
    }
    (folder / "tollgate.yaml").write_text(json.dumps(config))
    command = [
        sys.executable,
        "-m",
        "core.cli",
        "serve",
        "--config",
        str(folder / "tollgate.yaml"),
        "--port",
        "0",
        "--log-level",
        "warning",
    ]
    child = start_child(
        "sidecar", command, re.compile(r"listening on (http://\S+/v1)"), folder / "sidecar.log"
    )
    return child, folder / ".tollgate"


# -- a measured pytest run -----------------------------------------------------------------------------


@dataclass
class Outcome:
    variant: str
    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    exit_code: int
    summary_line: str
    recorded: int | None = None
    scored: int | None = None
    report_results: int | None = None
    suite_score: float | None = None
    notes: list[str] = field(default_factory=list)


def run_pytest(variant: str, project: Path, arguments: list[str], source: Path | None = None) -> Outcome:
    """Run pytest in `project`; wall time from spawn to exit, CPU time and peak RSS of that process from wait4.

    `source` puts another checkout's packages first on the path (the editable install's finder comes after it).
    """
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:deepeval",
        *arguments,
    ]
    log = project / f"pytest-{re.sub(r'[^a-z0-9]+', '_', variant)}.log"
    env = child_env(PYTHONDONTWRITEBYTECODE="1")
    if source is not None:
        env["PYTHONPATH"] = str(source)
    with log.open("w") as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=project, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    tail = [line for line in log.read_text().splitlines() if line.strip()]
    summary = next((line for line in reversed(tail) if re.search(r"\d+ (passed|failed|error)", line)), "?")
    cpu = usage.ru_utime + usage.ru_stime
    return Outcome(
        variant,
        round(wall, 2),
        round(cpu, 2),
        round(usage.ru_maxrss / 1024, 1),
        process.returncode,
        summary.strip("= "),
    )


def check_recording(outcome: Outcome, project: Path, cases: int) -> None:
    """Fill in what the run store and the JSON report hold for the last run of `project`."""
    report_path = project / ".tollgate" / "reports" / "last.json"
    if not report_path.exists():
        outcome.notes.append("no JSON report written")
        return
    report = json.loads(report_path.read_text())
    suite = report["suites"].get("scale", {})
    outcome.report_results = suite.get("results")
    outcome.suite_score = suite.get("score")
    with sqlite3.connect(project / ".tollgate" / "tollgate.db") as db:
        run_id = report["run_id"]
        outcome.recorded = db.execute(
            "SELECT count(*) FROM case_results WHERE run_id = ?", (run_id,)
        ).fetchone()[0]
        outcome.scored = db.execute(
            "SELECT count(*) FROM case_results WHERE run_id = ? AND json_array_length(scores) = 3", (run_id,)
        ).fetchone()[0]
    if outcome.recorded != cases or outcome.scored != cases or outcome.report_results != cases:
        outcome.notes.append(f"expected {cases} recorded and scored case results")


def sidecar_traffic(data_dir: Path) -> int | None:
    database = data_dir / "tollgate.db"
    if not database.exists():
        return None
    with sqlite3.connect(database) as db:
        return int(db.execute("SELECT count(*) FROM traffic").fetchone()[0])


# -- the run -------------------------------------------------------------------------------------------


@dataclass
class Variant:
    name: str
    project: Path
    arguments: list[str]
    tollgate: bool = True
    source: Path | None = None


def plan(args: argparse.Namespace, scratch: Path, fake: Child, sidecar: Child | None) -> list[Variant]:
    """The variants of one round, their projects written."""
    tollgate_args = [f"--tollgate-concurrency={args.concurrency}", *args.pytest_arg]
    variants = [
        Variant("tollgate, direct", scratch / "direct", [f"--tollgate-url={fake.url}", *tollgate_args])
    ]
    if args.against is not None:
        variants.append(
            Variant(
                f"tollgate, direct, {args.against.name}",
                scratch / "against",
                [f"--tollgate-url={fake.url}", *tollgate_args],
                source=args.against,
            )
        )
    if sidecar is not None:
        variants.append(
            Variant(
                "tollgate, sidecar",
                scratch / "via-sidecar",
                [f"--tollgate-url={sidecar.url}", *tollgate_args],
            )
        )
    if not args.no_peers:
        variants.append(Variant("pytest floor", scratch / "floor", ["-p", "no:tollgate"], tollgate=False))
        variants.append(Variant("pytest + httpx", scratch / "plain", ["-p", "no:tollgate"], tollgate=False))
    for variant in variants:
        plain_url = None if variant.tollgate else ("" if variant.name == "pytest floor" else fake.url)
        write_project(variant.project, args.cases, plain_url=plain_url)
    return variants


def measure(args: argparse.Namespace, scratch: Path) -> tuple[list[list[Outcome]], dict[str, Any]]:
    """Every variant once per round; the order rotates each round so no variant always runs first."""
    rounds: list[list[Outcome]] = []
    extra: dict[str, Any] = {}
    fake = start_fake(scratch)
    sidecar: Child | None = None
    sidecar_data: Path | None = None
    try:
        if not args.no_sidecar:
            sidecar, sidecar_data = start_sidecar(scratch, fake.url)
        variants = plan(args, scratch, fake, sidecar)
        for index in range(args.rounds):
            shift = index % len(variants)
            outcomes: dict[str, Outcome] = {}
            for variant in variants[shift:] + variants[:shift]:
                outcome = run_pytest(variant.name, variant.project, variant.arguments, variant.source)
                if variant.tollgate:
                    check_recording(outcome, variant.project, args.cases)
                outcomes[variant.name] = outcome
                print(
                    f"round {index + 1}: {variant.name}: {outcome.wall_s:.2f} s, {outcome.cpu_s:.2f} s CPU, "
                    f"{outcome.peak_rss_mib:.0f} MiB",
                    flush=True,
                )
            rounds.append([outcomes[variant.name] for variant in variants])
        if sidecar_data is not None:
            time.sleep(1.0)  # the traffic writer flushes every 0.25 s
            extra["sidecar_traffic_rows"] = sidecar_traffic(sidecar_data)
    finally:
        if sidecar is not None:
            sidecar.stop()
        fake.stop()
    return rounds, extra


def medians(rounds: list[list[Outcome]]) -> list[Outcome]:
    """Per variant, the round with the median wall time (its other figures come with it)."""
    chosen = []
    for column in zip(*rounds, strict=True):
        ordered = sorted(column, key=lambda outcome: outcome.wall_s)
        chosen.append(ordered[(len(ordered) - 1) // 2])
    return chosen


def print_table(outcomes: list[Outcome], cases: int) -> None:
    header = (
        "variant",
        "wall s",
        "CPU s",
        "peak RSS MiB",
        "exit",
        "recorded",
        "scored",
        "score",
        "pytest says",
    )
    rows = [header]
    for o in outcomes:
        rows.append(
            (
                o.variant,
                f"{o.wall_s:.2f}",
                f"{o.cpu_s:.2f}",
                f"{o.peak_rss_mib:.0f}",
                str(o.exit_code),
                "-" if o.recorded is None else str(o.recorded),
                "-" if o.scored is None else str(o.scored),
                "-" if o.suite_score is None else f"{o.suite_score:.3f}",
                o.summary_line,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    direct = outcomes[0]
    met = "met" if direct.wall_s <= GOAL_S and direct.peak_rss_mib <= GOAL_MIB else "missed"
    stretch = "met" if direct.wall_s <= STRETCH_S and direct.peak_rss_mib <= STRETCH_MIB else "missed"
    print(
        f"\n{cases} cases, tollgate direct: goal <= {GOAL_S:g} s / {GOAL_MIB:g} MiB {met}; "
        f"stretch <= {STRETCH_S:g} s / {STRETCH_MIB:g} MiB {stretch}"
    )
    for o in outcomes:
        for note in o.notes:
            print(f"{o.variant}: {note}")


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000, help="dataset rows (default 10000)")
    parser.add_argument("--concurrency", type=int, default=16, help="--tollgate-concurrency (default 16)")
    parser.add_argument("--no-sidecar", action="store_true", help="skip the variant through a real sidecar")
    parser.add_argument("--no-peers", action="store_true", help="skip the plain-pytest variants")
    parser.add_argument(
        "--rounds", type=int, default=1, help="runs of every variant; medians shown (default 1)"
    )
    parser.add_argument(
        "--against",
        type=Path,
        metavar="DIR",
        help="also run the direct variant with the packages of another checkout in DIR",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary projects and print where")
    parser.add_argument(
        "--pytest-arg", action="append", default=[], help="extra argument for the tollgate runs"
    )
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="tollgate-scale-"))
    try:
        load_before = os.getloadavg()
        rounds, extra = measure(args, scratch)
        load_after = os.getloadavg()
    finally:
        if args.keep:
            print(f"projects kept in {scratch}")
        else:
            subprocess.run(["rm", "-rf", str(scratch)], check=False)
    outcomes = medians(rounds)
    print_table(outcomes, args.cases)
    if "sidecar_traffic_rows" in extra:
        print(f"sidecar traffic log rows: {extra['sidecar_traffic_rows']}")
    facts = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "commit": git_commit(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_before": load_before,
        "load_after": load_after,
        "cases": args.cases,
        "concurrency": args.concurrency,
        **extra,
        "medians": [asdict(o) for o in outcomes],
        "rounds": [[asdict(o) for o in outcomes] for outcomes in rounds],
    }
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    path = results / f"harness-scale-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(facts, indent=2))
    print(
        f"load average {load_before[0]:.1f} -> {load_after[0]:.1f}; written {path.relative_to(HERE.parent)}"
    )
    ok = all(not o.notes and o.exit_code == 0 for outcomes in rounds for o in outcomes)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
