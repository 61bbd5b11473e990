"""Start the Streamlit dashboard, or hash a password for its users."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

from core.children import popen_module
from core.errors import TollgateError
from core.settings import find_config_file, load_settings
from dashboards.auth import hash_password

APP = Path(__file__).with_name("app.py")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action", nargs="?", default="run", choices=["run", "hash-password"],
        help="run (default): serve the dashboard; hash-password: print a hash for dashboard.users",
    )
    parser.add_argument("--config", help="path to tollgate.yaml")
    parser.add_argument("--address", help="bind address (default: dashboard.address, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: dashboard.port, 8501)")
    parser.add_argument(
        "--password-stdin", action="store_true", help="hash-password: read the password from standard input"
    )


def run(args: argparse.Namespace) -> int:
    if args.action == "hash-password":
        print(hash_password(_read_password(args.password_stdin)))
        return 0
    settings = load_settings(args.config)
    if not settings.dashboard.users:
        print("tollgate dashboard: no dashboard.users configured: nobody will be able to sign in", file=sys.stderr)
    arguments = streamlit_arguments(
        args.address or settings.dashboard.address,
        settings.dashboard.port if args.port is None else args.port,
    )
    # Its own session, so a Ctrl-C reaches it once (forwarded by us), not twice; it dies with us.
    process = popen_module("streamlit", arguments, env=child_env(args.config), start_new_session=True)
    return wait_forwarding_signals(process)


def wait_forwarding_signals(process: subprocess.Popen[bytes]) -> int:
    """Wait for `process`, passing SIGTERM and SIGINT on to it; its exit status (0 after a forwarded stop)."""
    forwarded: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        forwarded.append(signum)
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        status = process.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if forwarded and status in (0, -forwarded[0]):
        return 0
    return 128 - status if status < 0 else status


def streamlit_arguments(address: str, port: int) -> list[str]:
    """The arguments of `python -m streamlit`: loopback by default, headless, usage statistics off."""
    return [
        "run", str(APP),
        f"--server.address={address}",
        f"--server.port={port}",
        "--server.headless=true",
        "--browser.gatherUsageStats=false",
        "--client.toolbarMode=minimal",  # no "Deploy" button: this app is served by its owner
    ]


def child_env(config: str | None) -> dict[str, str]:
    """The environment of the Streamlit process: the config file it must load, usage statistics off."""
    env = dict(os.environ)
    path = find_config_file(config)
    if path is not None:
        env["TOLLGATE_CONFIG"] = str(path.resolve())
    env["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] = "false"
    return env


def _read_password(from_stdin: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise TollgateError("the passwords differ")
    if len(password) < 8:
        raise TollgateError("a dashboard password needs at least 8 characters")
    return password
