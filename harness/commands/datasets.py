"""Build regression datasets from logged traffic and reviewers' labels."""

from __future__ import annotations

import argparse

from core.errors import TollgateError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("args", nargs="*")


def run(args: argparse.Namespace) -> int:
    raise TollgateError("this command is not built yet")
