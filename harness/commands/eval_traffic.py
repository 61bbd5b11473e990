"""Score a sample of logged production traffic with the configured judges."""

from __future__ import annotations

import argparse
import sys

import orjson

from core.errors import TollgateError
from harness.commands.judge import add_judge_arguments, build_runtime


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sample", type=float, required=True, metavar="RATE", help="share of records to judge, 0..1")
    parser.add_argument("--since", default="24h", metavar="DURATION", help="window to sample (e.g. 1h, 24h, 7d)")
    parser.add_argument("--metric", action="append", metavar="NAME",
                        help="metric to score (repeat); default: every metric in judges.metrics")
    parser.add_argument("--limit", type=int, help="judge at most this many records")
    add_judge_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from harness.judges.config import resolve_metric
    from harness.judges.online import evaluate_traffic
    from harness.judges.traffic import parse_duration

    since = parse_duration(args.since)
    runtime = build_runtime(args)
    try:
        names = args.metric or sorted(runtime.settings.metrics)
        if not names:
            raise TollgateError("no metric to score: pass --metric NAME or define judges.metrics in tollgate.yaml")
        metrics = [resolve_metric(name, runtime.settings.metrics) for name in names]
        report = evaluate_traffic(runtime, metrics, rate=args.sample, since=since, limit=args.limit)
    finally:
        runtime.close()
        runtime.engine.dispose()
    if args.json:
        sys.stdout.write(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    print(f"{report.window} records in the last {args.since}; {report.sampled} sampled at {args.sample:g}"
          f" ({report.skipped_scored} already scored)")
    for label, counts in sorted(report.per_metric.items()):
        print(f"  {label}: {counts['scored']} scored, {counts['passed']} passed, {counts['unscored']} unscored")
    print(f"{report.judge_calls} judge calls; {report.queued} item(s) queued for review")
    return 0
