"""Compare two runs suite by suite (scores, 95% CI, p-value, verdict) and flag regressions."""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson

from harness.commands import add_config_argument, open_store
from harness.errors import HarnessError
from harness.gate import REPLAY_POLICIES, GateRule, compare_runs, format_table, rules_from_run, to_json
from harness.store import RunData, RunStore, is_file_ref, load_run_file

_REF_HELP = "a run id (or unique prefix), label, baseline name, latest, latest-on-branch[:BRANCH] or a .json file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("current", metavar="RUN_A", help=f"the run to judge: {_REF_HELP}")
    parser.add_argument("baseline", metavar="RUN_B", help=f"the run to compare against: {_REF_HELP}")
    parser.add_argument("--fail-on-regression", action="store_true", help="exit with status 1 on a regression")
    parser.add_argument("--max-drop", type=float, help="largest tolerated fall of a suite's score (default 0.02)")
    parser.add_argument("--alpha", type=float, help="significance level of the paired test (default 0.05)")
    parser.add_argument("--min-cases", type=int, help="fewest paired cases to call a regression (default 5)")
    parser.add_argument(
        "--replay", choices=REPLAY_POLICIES, default="warn",
        help="a suite replayed from recordings vs a live baseline: warn (default) or fail",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the comparison as JSON to FILE")
    add_config_argument(parser)


def run(args: argparse.Namespace) -> int:
    current, baseline = _load_pair(args)
    default = GateRule().with_overrides({"max_drop": args.max_drop, "alpha": args.alpha, "min_cases": args.min_cases})
    comparison = compare_runs(current, baseline, rules_from_run(current, default), default, replay_policy=args.replay)
    print(format_table(comparison))
    if args.json:
        target = Path(args.json)
        try:
            target.write_bytes(orjson.dumps(to_json(comparison), option=orjson.OPT_INDENT_2))
        except OSError as exc:
            raise HarnessError(f"{target}: cannot write ({exc.strerror})") from exc
    return comparison.exit_code if args.fail_on_regression else 0


def _load_pair(args: argparse.Namespace) -> tuple[RunData, RunData]:
    """Both runs; the database is opened only when a reference is not a file."""
    store: RunStore | None = None
    if not (is_file_ref(args.current) and is_file_ref(args.baseline)):
        store = open_store(args)
    current = load_run_file(args.current) if store is None else store.load_run(args.current)
    baseline = load_run_file(args.baseline) if store is None else store.load_run(args.baseline, exclude=current.id)
    return current, baseline
