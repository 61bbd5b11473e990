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
    evaluate.add_argument("--loco", type=Path, metavar="TRAINING_SET",
                          help="also print leave-one-category-out figures of the trained injection detector on "
                               "this training set, and its in-sample figures")
    train = actions.add_parser("train", help="train the injection detector on labelled texts")
    train.add_argument("--dataset", required=True, type=Path,
                       help='JSON lines {"text": "...", "label": "attack"|"benign", "category": "..."}')
    train.add_argument("--out", required=True, type=Path, help="where to write the weights (.npz)")
    train.add_argument("--max-fpr", type=float, default=None,
                       help="false-positive rate the cross-validated threshold keeps to (default 0.02)")
    train.add_argument("--seed", type=int, default=None, help="seed of the cross-validation folds (default 17)")


def run(args: argparse.Namespace) -> int:
    if args.action == "train":
        return _train(args)
    if args.loco is not None and args.json:
        raise TollgateError("--loco prints a table: use it without --json")
    status = _evaluate(args)
    if args.loco is not None:
        _print_loco(args.loco)
    return status


def _train(args: argparse.Namespace) -> int:
    from core.embeddings import encode
    from sidecar.guards import injection_training as training

    examples = training.read_examples(args.dataset)
    features = training.featurise(examples, encode)
    max_fpr = training.MAX_FPR if args.max_fpr is None else args.max_fpr
    seed = training.SEED if args.seed is None else args.seed
    model = training.train(features, max_fpr=max_fpr, seed=seed)
    model.save(args.out)
    recall, fpr = training.in_sample(model, features)
    attacks = int(features.labels.sum())
    print(f"{args.out}: trained on {len(examples)} texts ({attacks} attacks), threshold {model.threshold:.3f} "
          f"(out-of-fold FP rate <= {max_fpr:.3f}); in-sample recall {recall:.3f}, FP rate {fpr:.3f}")
    return 0


def _print_loco(path: Path) -> None:
    from core.embeddings import encode
    from sidecar.guards import injection_training as training
    from sidecar.guards.injection_model import load_model

    features = training.featurise(training.read_examples(path), encode)
    results = training.leave_one_category_out(features)
    print(f"\nleave-one-category-out on {path} (train without the category and a benign fold, test on both):")
    print(f"{'held-out category':<20} {'attacks':>7} {'recall':>7} {'benign':>6} {'FPR':>6} {'threshold':>9}")
    for r in results:
        print(f"{r.category:<20} {r.attacks:>7} {r.recall:>7.3f} {r.benign:>6} {r.false_positive_rate:>6.3f} "
              f"{r.threshold:>9.3f}")
    attacks = sum(r.attacks for r in results)
    benign = sum(r.benign for r in results)
    recall = sum(r.recall * r.attacks for r in results) / attacks
    fpr = sum(r.false_positive_rate * r.benign for r in results) / benign
    print(f"{'all (pooled)':<20} {attacks:>7} {recall:>7.3f} {benign:>6} {fpr:>6.3f}")
    model = load_model()
    in_recall, in_fpr = training.in_sample(model, features)
    print(f"in-sample, shipped model (threshold {model.threshold:.3f}): recall {in_recall:.3f}, FP rate {in_fpr:.3f}")


def _evaluate(args: argparse.Namespace) -> int:
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
