"""Build regression datasets from logged traffic and reviewers' labels."""

from __future__ import annotations

import argparse

from harness.commands import add_config_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = actions.add_parser("from-traffic", help="write logged requests (with reviewers' labels) as a .jsonl")
    build.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                       help="model, prompt, feature, user or label (good, bad, reviewed, unreviewed); repeatable")
    build.add_argument("--since", metavar="DURATION", help="only records this recent (e.g. 7d)")
    build.add_argument("--limit", type=int, help="at most this many cases")
    build.add_argument("--out", required=True, metavar="FILE", help="e.g. datasets/from_traffic.jsonl")
    add_config_argument(build)


def run(args: argparse.Namespace) -> int:
    from core.database import open_database
    from core.settings import load_settings
    from harness.judges.regression import TrafficFilter, dataset_from_traffic
    from harness.judges.traffic import parse_duration

    filters = TrafficFilter.parse(args.filter)
    since = parse_duration(args.since) if args.since else None
    settings = load_settings(args.config)
    engine = open_database(settings.resolved_database_url)
    try:
        written = dataset_from_traffic(engine, args.out, filters=filters, since=since, limit=args.limit,
                                       judge_feature=settings.judges.feature)
    finally:
        engine.dispose()
    print(f"{written} case(s) written to {args.out}")
    return 0
