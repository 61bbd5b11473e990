"""Child-process entry point that runs llama.cpp's HTTP server in-process until told to stop.

Run as `python -m sidecar.embedded.server_main --model FILE --port N ...`. The server lives as long as
the `xllamacpp.Server` object, so this process only builds it, prints a ready line and waits for
SIGTERM/SIGINT or for its parent to disappear, so that no orphan llama server outlives the sidecar.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

LOOPBACK = "127.0.0.1"
READY_PREFIX = "tollgate-embedded ready"
PARENT_POLL_S = 0.5


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface the supervisor calls."""
    parser = argparse.ArgumentParser(prog="python -m sidecar.embedded.server_main", description=__doc__)
    parser.add_argument("--model", required=True, help="path of the GGUF file")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parallel", type=int, default=4, help="concurrent request slots")
    parser.add_argument("--context", type=int, default=8192, help="total context, shared by the slots")
    parser.add_argument("--alias", required=True, help="model name the server reports")
    parser.add_argument(
        "--parent-pid", type=int, default=None, help="exit when this process is no longer the parent"
    )
    parser.add_argument("--verbosity", type=int, default=1, help="llama.cpp log level: 1 errors, 3 info")
    return parser


def build_params(args: argparse.Namespace) -> Any:
    """The llama.cpp server parameters for one loopback-only, offline server."""
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.model_alias = {args.alias}
    params.hostnames = [LOOPBACK]
    params.port = args.port
    params.n_parallel = args.parallel
    params.n_ctx = args.context
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.endpoint_metrics = True
    # Never fetch anything at run time, and serve no browser UI from a sidecar's private upstream.
    params.offline = True
    params.ui = False
    params.verbosity = args.verbosity
    return params


def _parent_gone(parent_pid: int | None) -> bool:
    # Once the parent dies the kernel re-parents us (to init or a subreaper), so getppid() changes.
    return parent_pid is not None and os.getppid() != parent_pid


def wait_for_stop(stop: threading.Event, parent_pid: int | None) -> str:
    """Block until a stop signal arrives or the parent dies; return the reason."""
    # Polling getppid() instead of PR_SET_PDEATHSIG: the death signal follows the *thread* that
    # forked us, so a parent that spawns from a short-lived thread would kill us by accident.
    while not stop.wait(PARENT_POLL_S):
        if _parent_gone(parent_pid):
            return f"parent process {parent_pid} is gone"
    return "stop signal"


def main(argv: Sequence[str] | None = None) -> int:
    """Start the server, report readiness on stdout, and serve until stopped."""
    args = build_parser().parse_args(argv)
    stop = threading.Event()

    def _request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Installed before the (half-second) model load so an early SIGTERM still ends in a clean exit.
    signal.signal(signal.SIGTERM, _request_stop)
    signal.signal(signal.SIGINT, _request_stop)
    if _parent_gone(args.parent_pid):
        print(f"parent process {args.parent_pid} is already gone; not starting", file=sys.stderr)
        return 1

    import xllamacpp

    try:
        server = xllamacpp.Server(build_params(args))
    except RuntimeError as exc:
        # llama.cpp has already written the cause (bad model file, port taken) to stderr.
        print(f"llama.cpp server failed to start: {exc}", file=sys.stderr, flush=True)
        return 2
    print(f"{READY_PREFIX} http://{LOOPBACK}:{args.port} pid={os.getpid()}", flush=True)
    reason = wait_for_stop(stop, args.parent_pid)
    print(f"tollgate-embedded stopping: {reason}", flush=True)
    del server  # the destructor stops llama.cpp's HTTP and inference loops
    return 0


if __name__ == "__main__":
    sys.exit(main())
