"""Calibrate LLM judges against human labels and inspect the judge cache."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from harness.commands import add_config_argument


def add_judge_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by the commands that run judges (`judge calibrate`, `eval-traffic`)."""
    add_config_argument(parser)
    parser.add_argument("--url", help="OpenAI-compatible endpoint of the judges (…/v1); default: judges.base_url, "
                                      "else the sidecar at sidecar.host:sidecar.port")
    parser.add_argument("--judge", action="append", metavar="MODEL",
                        help="judge model (repeat for a panel); default: judges.models / judges.model / embedded")
    parser.add_argument("--samples", type=int, help="verdicts per judge and item (default: judges.samples)")
    parser.add_argument("--aggregate", choices=("mean", "majority"), help="default: judges.aggregate")
    parser.add_argument("--concurrency", type=int, help="judge calls in flight (default: judges.concurrency)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    calibrate = actions.add_parser("calibrate", help="score a human-labelled set and store the judge's agreement")
    calibrate.add_argument("--metric", required=True,
                           help="a name from judges.metrics, a .yaml/.json metric definition, or a built-in metric")
    calibrate.add_argument("--dataset", required=True, metavar="FILE", help="labelled cases (see docs/judges.md)")
    calibrate.add_argument("--no-store", action="store_true", help="report only; do not store the calibration")
    add_judge_arguments(calibrate)
    listing = actions.add_parser("calibrations", help="list stored calibrations, newest first")
    listing.add_argument("--metric", help="only this metric label (e.g. geval:policy_grounded)")
    add_config_argument(listing)
    clear = actions.add_parser("clear-cache", help="forget cached verdicts (all, or of one metric label)")
    clear.add_argument("--metric", help="only this metric label")
    add_config_argument(clear)


def build_runtime(args: argparse.Namespace) -> Any:
    """A judge runtime from the settings, with the command line's overrides."""
    from core.database import open_database
    from core.settings import load_settings
    from harness.judges.runtime import JudgeRuntime

    settings = load_settings(getattr(args, "config", None))
    overrides: dict[str, Any] = {}
    if getattr(args, "judge", None):
        overrides["models"] = list(args.judge)
    for name in ("samples", "aggregate", "concurrency"):
        if getattr(args, name, None) is not None:
            overrides[name] = getattr(args, name)
    judges = settings.judges.model_validate({**settings.judges.model_dump(), **overrides})
    url = getattr(args, "url", None) or judges.base_url or f"http://{settings.sidecar.host}:{settings.sidecar.port}/v1"
    return JudgeRuntime(judges, url, default_model=settings.embedded.model_name,
                        engine=open_database(settings.resolved_database_url))


def run(args: argparse.Namespace) -> int:
    action = {"calibrate": _calibrate, "calibrations": _calibrations, "clear-cache": _clear}[args.action]
    return action(args)


def _calibrate(args: argparse.Namespace) -> int:
    from harness.judges.calibration import calibrate, store_calibration
    from harness.judges.config import resolve_metric

    runtime = build_runtime(args)
    try:
        metric = resolve_metric(args.metric, runtime.settings.metrics)
        result = calibrate(runtime, metric, args.dataset)
        stored = None if args.no_store else store_calibration(runtime, result)
    finally:
        runtime.close()
        runtime.engine.dispose()
    if args.json:
        sys.stdout.write(orjson.dumps({**result.row(), "id": stored}, default=str,
                                      option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    print(f"metric   {result.metric} (rubric {result.rubric_hash[:12]})")
    print(f"judges   {result.judges}")
    print(f"dataset  {result.dataset} ({result.n_items} items, {result.n_scored} scored, "
          f"{result.n_items - result.n_scored} unscored)")
    print(f"accuracy {_figure(result.accuracy)}")
    print(f"kappa    {_figure(result.kappa)}  (Cohen's, judge pass/fail vs human good/bad)")
    print(f"spearman {_figure(result.spearman)}  (judge values vs human scores)")
    print(f"judge calls {result.judge_calls}" + ("" if stored is None else f"; stored as calibration {stored}"))
    return 0


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _calibrations(args: argparse.Namespace) -> int:
    from harness.judges.calibration import latest_calibrations

    runtime = build_runtime(args)
    try:
        rows = latest_calibrations(runtime, args.metric)
    finally:
        runtime.engine.dispose()
    if not rows:
        print("no calibrations stored (tollgate judge calibrate --metric NAME --dataset FILE)")
        return 0
    for row in rows:
        print(f"{row['id']:>4}  {row['created_at']:%Y-%m-%d %H:%M}  {row['metric']}  rubric {row['rubric_hash'][:12]}"
              f"  {row['judges']}  n={row['n_scored']}/{row['n_items']}  accuracy {_figure(row['accuracy'])}"
              f"  kappa {_figure(row['kappa'])}  spearman {_figure(row['spearman'])}")
    return 0


def _clear(args: argparse.Namespace) -> int:
    from harness.judges.cache import JudgeCache

    runtime = build_runtime(args)
    try:
        removed = JudgeCache(runtime.engine).clear(args.metric)
    finally:
        runtime.engine.dispose()
    print(f"{removed} cached verdict(s) removed")
    return 0
