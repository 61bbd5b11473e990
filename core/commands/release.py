"""Show and move release labels: status, promote (gate-checked), canary, shadow, rollback, experiments."""

from __future__ import annotations

import argparse
import getpass
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Engine

from core.errors import TollgateError
from core.releases.documents import as_document
from core.settings import Settings, load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="path to tollgate.yaml")
    parser.add_argument("--prompts", help="prompt directory (default: releases.prompts_dir)")
    parser.add_argument("--actor", help="who makes the change, for the audit log (default: the login name)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    status = actions.add_parser("status", help="labels of every subject (or one) and running experiments")
    status.add_argument("subject", nargs="?")
    status.add_argument("--json", action="store_true")
    promote = actions.add_parser("promote", help="point production at a version; refused unless it passed the gate")
    _target(promote)
    promote.add_argument("--force", action="store_true", help="promote despite the gate (needs --reason; audited)")
    promote.add_argument("--reason", help="why (required with --force)")
    canary = actions.add_parser("canary", help="serve a candidate to a share of users (sticky by user)")
    _target(canary)
    canary.add_argument("--weight", type=float, help="share of users, e.g. 0.05 (required unless --clear)")
    canary.add_argument("--clear", action="store_true", help="remove the canary")
    shadow = actions.add_parser("shadow", help="mirror requests to a candidate in the background (never served)")
    _target(shadow)
    shadow.add_argument("--clear", action="store_true", help="remove the shadow")
    back = actions.add_parser("rollback", help="production back to what it served before (canary cleared)")
    _target(back)
    back.add_argument("--reason", help="why, for the audit log")
    gate = actions.add_parser("gate", help="show the gate's decision for a version without promoting it")
    _target(gate)
    audit = actions.add_parser("audit", help="the latest label changes")
    audit.add_argument("subject", nargs="?")
    audit.add_argument("--limit", type=int, default=20)
    experiment = actions.add_parser("experiment", help="start, stop or list A/B experiments")
    experiment.add_argument("verb", choices=["start", "stop", "list"])
    experiment.add_argument("name", nargs="?")
    experiment.add_argument("subject", nargs="?")
    experiment.add_argument("--arm", action="append", default=[], metavar="NAME=VERSION[:MODEL][@WEIGHT]",
                            help="an arm (repeat); VERSION may be empty or 'current'; e.g. control=@1 big=:gpt@1")
    experiment.add_argument("--description")
    variants = actions.add_parser("variants", help="per-variant quality, latency, errors, cost and outcomes")
    variants.add_argument("--prompt")
    variants.add_argument("--experiment")
    variants.add_argument("--json", action="store_true")


def _target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("subject", help="a prompt name or a model alias")
    parser.add_argument("--version", help="prompt version (a unique prefix, or 'current' for the file on disk)")
    parser.add_argument("--model", help="the model that serves this label")


def run(args: argparse.Namespace) -> int:
    from core.database import open_database

    settings = load_settings(args.config)
    engine = open_database(settings.resolved_database_url)
    try:
        handler = _HANDLERS[args.action]
        return handler(engine, settings, args)
    finally:
        engine.dispose()


def _registry(settings: Settings, args: argparse.Namespace) -> Any:
    from core.prompts import PromptRegistry

    return PromptRegistry(args.prompts or settings.releases.prompts_dir)


def _actor(args: argparse.Namespace) -> str:
    if args.actor:
        return str(args.actor)
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers
        return "cli"


def _status(engine: Engine, settings: Settings, args: argparse.Namespace) -> int:
    from core.releases import list_experiments, release_status

    labels = release_status(engine, args.subject)
    experiments = list_experiments(engine, subject=args.subject, running_only=True)
    if args.json:
        print(json.dumps({"labels": as_document(labels), "experiments": as_document(experiments)}, indent=2))
        return 0
    if not labels and not experiments:
        print("nothing released yet (tollgate release promote <prompt>)")
        return 0
    rows = [("SUBJECT", "LABEL", "KIND", "VERSION", "MODEL", "WEIGHT", "UPDATED", "BY")]
    rows += [(s.subject, s.label, s.kind, s.target.version or "-", s.target.model or "-",
              f"{s.weight:g}" if s.label == "canary" else "-", f"{s.updated_at:%Y-%m-%d %H:%M}", s.updated_by or "-")
             for s in labels]
    _table(rows)
    for e in experiments:
        arms = ", ".join(f"{a.name}={a.version or '-'}{':' + a.model if a.model else ''}@{a.weight:g}" for a in e.arms)
        print(f"experiment {e.name} on {e.subject}: {arms}")
    return 0


def _promote(engine: Engine, settings: Settings, args: argparse.Namespace) -> int:
    from core.releases import promote

    change = promote(engine, args.subject, version=args.version, model=args.model, policy=settings.releases.gate,
                     registry=_registry(settings, args), force=args.force, reason=args.reason, actor=_actor(args))
    _announce(settings, change)
    if change.gate is not None:
        print(("FORCED past the gate: " if change.forced else "gate: ") + change.gate.summary())
    return 0


def _canary(engine: Engine, settings: Settings, args: argparse.Namespace) -> int:
    from core.releases import clear_label, set_canary

    if args.clear:
        change = clear_label(engine, args.subject, "canary", actor=_actor(args))
    elif args.weight is None:
        raise TollgateError("give the canary's share of users with --weight (e.g. 0.05), or --clear")
    else:
        change = set_canary(engine, args.subject, weight=args.weight, version=args.version, model=args.model,
                            registry=_registry(settings, args), actor=_actor(args))
    _announce(settings, change)
    return 0


def _shadow(engine: Engine, settings: Settings, args: argparse.Namespace) -> int:
    from core.releases import clear_label, set_shadow

    if args.clear:
        change = clear_label(engine, args.subject, "shadow", actor=_actor(args))
    else:
        change = set_shadow(engine, args.subject, version=args.version, model=args.model,
                            registry=_registry(settings, args), actor=_actor(args))
    _announce(settings, change)
    return 0


def _rollback(engine: Engine, settings: Settings, args: argparse.Namespace) -> int:
    from core.releases import rollback

    change = rollback(engine, args.subject, version=args.version, model=args.model, reason=args.reason,
                      actor=_actor(args))
    _announce(settings, change)
    return 0


def _gate(engine: Engine, settings: Settings, args: argparse.Namespace) -> int:
    from core.releases import evaluate_gate, resolve_target

    kind, target = resolve_target(engine, args.subject, args.version or "current" if args.model is None else
                                  args.version, args.model, _registry(settings, args))
    decision = evaluate_gate(engine, args.subject, version=target.version if kind == "prompt" else None,
                             model=target.model, policy=settings.releases.gate)
    for check in decision.checks:
        print(f"{'ok  ' if check.passed else 'FAIL'} {check.name}: {check.detail}")
    print(f"gate: {'PASSED' if decision.passed else 'REFUSED'}")
    return 0 if decision.passed else 1


def _audit(engine: Engine, settings: Settings, args: argparse.Namespace) -> int:
    from core.releases import audit_log

    rows = [("WHEN", "SUBJECT", "LABEL", "ACTION", "FROM", "TO", "FORCED", "BY", "REASON")]
    for e in audit_log(engine, args.subject, args.limit):
        rows.append((f"{e.at:%Y-%m-%d %H:%M:%S}", e.subject, e.label or "-", e.action,
                     e.before.describe() if e.before else "-", e.after.describe() if e.after else "-",
                     "yes" if e.forced else "-", e.actor or "-", e.reason or "-"))
    _table(rows)
    return 0


def _experiment(engine: Engine, settings: Settings, args: argparse.Namespace) -> int:
    from core.releases import list_experiments, start_experiment, stop_experiment

    if args.verb == "list":
        for e in list_experiments(engine, subject=args.subject):
            arms = ", ".join(f"{a.name}@{a.weight:g}" for a in e.arms)
            print(f"{e.name}\t{e.subject}\t{e.status}\t{arms}\tstarted {e.started_at:%Y-%m-%d %H:%M}")
        return 0
    if not args.name:
        raise TollgateError(f"experiment {args.verb} needs the experiment's name")
    if args.verb == "stop":
        info = stop_experiment(engine, args.name, actor=_actor(args))
        print(f"stopped {info.name} on {info.subject}")
        return 0
    if not args.subject:
        raise TollgateError("experiment start needs NAME SUBJECT and two or more --arm")
    specs = [_parse_arm(text) for text in args.arm]
    info = start_experiment(engine, args.name, args.subject, specs, registry=_registry(settings, args),
                            description=args.description, actor=_actor(args))
    _notify(settings)
    print(f"started {info.name} on {info.subject}: " + ", ".join(f"{a.name}={a.version or '-'}" for a in info.arms))
    return 0


def _parse_arm(text: str) -> Any:
    from core.releases import ArmSpec

    name, sep, rest = text.partition("=")
    if not sep or not name:
        raise TollgateError(f"--arm {text!r}: expected NAME=VERSION[:MODEL][@WEIGHT]")
    rest, _, weight = rest.partition("@")
    version, _, model = rest.partition(":")
    try:
        share = float(weight) if weight else 1.0
    except ValueError as exc:
        raise TollgateError(f"--arm {text!r}: the weight after '@' must be a number") from exc
    return ArmSpec(name, version or None, model or None, share)


def _variants(engine: Engine, settings: Settings, args: argparse.Namespace) -> int:
    from core.releases import compare_variants

    summaries = compare_variants(engine, prompt_name=args.prompt, experiment=args.experiment)
    if args.json:
        print(json.dumps(as_document(summaries), indent=2))
        return 0
    rows = [("VARIANT", "REQUESTS", "ERRORS", "P50 MS", "P95 MS", "COST USD", "FLAGGED", "OUTCOMES")]
    for s in summaries:
        outcomes = ", ".join(f"{o.outcome} {o.count} ({o.rate:.1%})" for o in s.outcomes.values()) or "-"
        rows.append((s.variant, str(s.requests), f"{s.errors} ({s.error_rate:.1%})", _ms(s.latency_p50_ms),
                     _ms(s.latency_p95_ms), "-" if s.cost_usd is None else f"{s.cost_usd:.4f}",
                     f"{s.flagged} ({s.flagged_rate:.1%})", outcomes))
    _table(rows)
    return 0


def _announce(settings: Settings, change: Any) -> None:
    _notify(settings)
    before = change.before.describe() if change.before else "-"
    after = change.after.describe() if change.after else "(cleared)"
    weight = f" at weight {change.weight:g}" if change.label == "canary" and change.after else ""
    print(f"{change.subject} {change.label}: {before} -> {after}{weight} ({change.action}, audit #{change.audit_id})")


def _notify(settings: Settings) -> None:
    from core.releases.notify import publish_change

    publish_change(settings.redis_url)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


_HANDLERS = {
    "status": _status, "promote": _promote, "canary": _canary, "shadow": _shadow, "rollback": _rollback,
    "gate": _gate, "audit": _audit, "experiment": _experiment, "variants": _variants,
}
