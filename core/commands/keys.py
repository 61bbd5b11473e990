"""Create, list and revoke virtual API keys (and list cost alerts)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from sqlalchemy.engine import Engine

from core.access_changes import announce_access_change
from core.settings import load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="path to tollgate.yaml")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a key and print its token (shown once)")
    create.add_argument("name", help="what the key is for, e.g. 'checkout-service'")
    create.add_argument("--user", help="owner: requests made with the key are tagged with this user")
    create.add_argument("--model", action="append", dest="models", metavar="MODEL",
                        help="a model (or glob) the key may call; repeat it; default: every model")
    create.add_argument("--rpm", type=int, help="requests per minute (default: access.default_requests_per_minute)")
    create.add_argument("--tpm", type=int, help="tokens per minute (default: access.default_tokens_per_minute)")
    create.add_argument("--budget", type=float, metavar="USD", help="the key's budget in USD per --period")
    create.add_argument("--period", choices=["daily", "monthly"], default="daily", help="budget period (daily)")
    create.add_argument("--json", action="store_true", help="print the key as JSON")
    listing = actions.add_parser("list", help="list keys (never their tokens)")
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    listing.add_argument("--json", action="store_true", help="print JSON")
    revoke = actions.add_parser(
        "revoke", help="revoke a key (every sidecar refuses it at once with Redis, else within access.refresh_s)")
    revoke.add_argument("key_id")
    alerts = actions.add_parser("alerts", help="list cost alerts (budget thresholds, spikes, runaway keys)")
    alerts.add_argument("--check", action="store_true", help="evaluate alerts now before listing them")
    alerts.add_argument("--limit", type=int, default=50)


def run(args: argparse.Namespace) -> int:
    from core.database import open_database

    settings = load_settings(args.config)
    engine = open_database(settings.resolved_database_url)
    try:
        if args.action == "create":
            status = _create(engine, args)
            announce_access_change(settings.redis_url)
            return status
        if args.action == "list":
            return _list(engine, args)
        if args.action == "revoke":
            from core.keys import revoke_key

            key = revoke_key(engine, args.key_id)
            announce_access_change(settings.redis_url)
            print(f"revoked {key.id} ({key.name})")
            return 0
        return _alerts(engine, settings.access, args)
    finally:
        engine.dispose()


def _create(engine: Engine, args: argparse.Namespace) -> int:
    from core.budgets import add_budget, describe_budget
    from core.keys import create_key, describe_key

    created = create_key(
        engine, args.name, user=args.user, allowed_models=args.models,
        requests_per_minute=args.rpm, tokens_per_minute=args.tpm,
    )
    document: dict[str, Any] = {"key": created.token, **describe_key(created.key)}
    if args.budget is not None:
        document["budget"] = describe_budget(add_budget(engine, "key", created.key.id, args.period, args.budget))
    if args.json:
        print(json.dumps(document, indent=2))
        return 0
    print(f"created {created.key.id} ({created.key.name})")
    print(f"key: {created.token}")
    print("store it now: it is not kept and cannot be shown again")
    return 0


def _list(engine: Engine, args: argparse.Namespace) -> int:
    from core.keys import describe_key, list_keys

    keys = [describe_key(key) for key in list_keys(engine, include_revoked=args.all)]
    if args.json:
        print(json.dumps(keys, indent=2))
        return 0
    if not keys:
        print("no keys")
        return 0
    for key in keys:
        models = ",".join(key["allowed_models"]) if key["allowed_models"] else "*"
        limits = f"rpm={key['requests_per_minute'] or '-'} tpm={key['tokens_per_minute'] or '-'}"
        state = f"revoked {key['revoked_at'][:19]}" if key["revoked_at"] else "active"
        print(f"{key['id']}  {key['prefix']}…  {key['name']:<24} models={models} {limits} user={key['user'] or '-'} {state}")
    return 0


def _alerts(engine: Engine, access: Any, args: argparse.Namespace) -> int:
    from core.alerts import evaluate_alerts, format_alerts, list_alerts

    if args.check:
        evaluate_alerts(engine, access)
    lines = format_alerts(list_alerts(engine, limit=args.limit))
    print("\n".join(lines) if lines else "no alerts")
    return 0
