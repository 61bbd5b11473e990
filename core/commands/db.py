"""Create or upgrade the database schema (Alembic) and show where it lives."""

from __future__ import annotations

import argparse

from core.database import open_database
from core.settings import load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["upgrade", "url"], help="upgrade: migrate to the latest schema")
    parser.add_argument("--config", help="path to tollgate.yaml")


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    url = settings.resolved_database_url
    if args.action == "url":
        print(url)
        return 0
    engine = open_database(url)
    print(f"database at {engine.url.render_as_string(hide_password=True)} is up to date")
    engine.dispose()
    return 0
