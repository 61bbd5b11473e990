"""The harness's `tollgate` subcommands (`compare`, `baseline`): entry points in group `tollgate.commands`."""

from __future__ import annotations

import argparse

from core.database import open_database
from core.settings import load_settings
from harness.store import RunStore


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="path to tollgate.yaml (default: $TOLLGATE_CONFIG or ./tollgate.yaml)")


def open_store(args: argparse.Namespace) -> RunStore:
    """The run store of the configured database, migrated to the latest schema."""
    settings = load_settings(args.config)
    return RunStore(open_database(settings.resolved_database_url))
