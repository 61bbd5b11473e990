"""Run the OpenAI-compatible sidecar (starts the embedded model when no upstream is configured)."""

from __future__ import annotations

import argparse

from core.settings import load_settings
from core.tag_policy import TagPolicy


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="path to tollgate.yaml (default: ./tollgate.yaml if present)")
    parser.add_argument("--host", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind; 0 picks a free one (default 8787)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def run(args: argparse.Namespace) -> int:
    sidecar = {key: value for key, value in (("host", args.host), ("port", args.port)) if value is not None}
    settings = load_settings(args.config, sidecar=sidecar or None)
    TagPolicy.from_settings(settings)  # `access.hash_users` without its key: one line, exit 2, nothing started
    from sidecar.server import serve

    return serve(settings, log_level=args.log_level)
