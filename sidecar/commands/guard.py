"""Measure the configured guardrails on a labelled dataset."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from core.errors import TollgateError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    evaluate = actions.add_parser("eval", help="precision, recall and false-positive rate per guard")
    evaluate.add_argument("--dataset", required=True, type=Path,
                          help='JSON lines {"text": "...", "expected": ["<guard label>", ...]}')
    evaluate.add_argument("--config", help="path to tollgate.yaml (default: ./tollgate.yaml if present)")
    evaluate.add_argument("--guard", action="append", default=[],
                          help="measure only this guard label (repeatable)")
    evaluate.add_argument("--defaults", action="store_true",
                          help="measure the default guards, whatever the configuration says")
    evaluate.add_argument("--json", action="store_true", help="print the figures as JSON")
    evaluate.add_argument("--show-errors", action="store_true", help="list examples of misses and false alarms")


def run(args: argparse.Namespace) -> int:
    from core.config.guards import DEFAULT_GUARDS, GuardPolicy
    from core.settings import load_settings
    from sidecar.guards.evaluation import evaluate, read_dataset, text_detectors

    cases = read_dataset(args.dataset)
    settings = load_settings(args.config)
    policies = settings.guards.all_policies()
    source = "configured guards"
    if args.defaults or not policies:
        policies = [GuardPolicy.model_validate({"guards": list(DEFAULT_GUARDS)})]
        source = "default guards"
    detectors = text_detectors(policies)
    if args.guard:
        unknown = sorted(set(args.guard) - set(detectors))
        if unknown:
            raise TollgateError(f"no text guard labelled {', '.join(unknown)} (have: {', '.join(sorted(detectors))})")
        detectors = {label: detectors[label] for label in args.guard}
    if not detectors:
        raise TollgateError("none of the guards inspects text (size, injection, scope, pii, semantic)")
    scores = evaluate(cases, detectors)
    if args.json:
        sys.stdout.write(orjson.dumps({"dataset": str(args.dataset), "cases": len(cases), "source": source,
                                       "guards": [s.as_dict() for s in scores]}, option=orjson.OPT_INDENT_2).decode())
        sys.stdout.write("\n")
        return 0
    print(f"{args.dataset}: {len(cases)} cases, {source}")
    print(f"{'guard':<16} {'TP':>4} {'FP':>4} {'FN':>4} {'TN':>4} {'precision':>9} {'recall':>7} {'FPR':>6} {'ms/text':>8}")
    for score in scores:
        row = score.as_dict()
        print(f"{score.guard:<16} {score.tp:>4} {score.fp:>4} {score.fn:>4} {score.tn:>4} "
              f"{_fmt(row['precision']):>9} {_fmt(row['recall']):>7} {_fmt(row['false_positive_rate']):>6} "
              f"{row['ms_per_text']:>8.2f}")
        if args.show_errors:
            for text in score.misses:
                print(f"    missed:      {text[:100]}")
            for text in score.false_alarms:
                print(f"    false alarm: {text[:100]}")
    return 0


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
