"""Serve the fake OpenAI-compatible upstream used by tests and benchmarks (prints its URL when ready)."""

from __future__ import annotations

import argparse
import sys

from sidecar.fake_upstream.behaviour import FakeBehaviour, parse_fault_spec
from sidecar.fake_upstream.framing import SseStyle
from sidecar.fake_upstream.runner import serve_until_signal
from sidecar.fake_upstream.stats import DEFAULT_HISTORY


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = FakeBehaviour()
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks a free one (default)")
    parser.add_argument("--ttft-ms", type=float, default=defaults.ttft_s * 1000, help="time to first token")
    parser.add_argument(
        "--inter-token-ms", type=float, default=defaults.inter_token_s * 1000, help="time between tokens"
    )
    parser.add_argument(
        "--output-tokens",
        type=int,
        default=defaults.output_tokens,
        help=f"tokens per answer (default {defaults.output_tokens})",
    )
    parser.add_argument(
        "--embedding-dim",
        type=int,
        default=defaults.embedding_dim,
        help=f"embedding dimensions (default {defaults.embedding_dim})",
    )
    parser.add_argument("--reply", help="fixed answer text instead of the echo of the prompt")
    parser.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="NAME",
        help="a model listed by /v1/models (repeatable; default fake-model)",
    )
    parser.add_argument(
        "--fault",
        default="none",
        metavar="SPEC",
        help="default fault: none, reset, hang, garbage, status:503, cut:3, "
        "slow_first_byte:0.5 or a JSON behaviour patch",
    )
    parser.add_argument(
        "--sse-style",
        default=defaults.sse_style.value,
        choices=[style.value for style in SseStyle],
        help="framing of streamed events (default canonical: `data: <json>` + blank line)",
    )
    parser.add_argument(
        "--history",
        type=int,
        default=DEFAULT_HISTORY,
        help=f"requests kept in full for /_fake/stats (default {DEFAULT_HISTORY})",
    )


def build_behaviour(args: argparse.Namespace) -> FakeBehaviour:
    """The start behaviour the flags describe; raises `FakeUpstreamError` (a TollgateError) if invalid."""
    changes = {
        "ttft_s": args.ttft_ms / 1000,
        "inter_token_s": args.inter_token_ms / 1000,
        "output_tokens": args.output_tokens,
        "embedding_dim": args.embedding_dim,
        "reply": args.reply,
        "sse_style": args.sse_style,
    }
    if args.models:
        changes["models"] = tuple(args.models)
    return FakeBehaviour().patched({**changes, **parse_fault_spec(args.fault)})


def _announce(url: str) -> None:
    # One line, flushed: a parent process reads it to learn the port.
    print(url, flush=True)


def run(args: argparse.Namespace) -> int:
    behaviour = build_behaviour(args)
    try:
        serve_until_signal(
            behaviour, host=args.host, port=args.port, history=args.history, on_ready=_announce
        )
    except KeyboardInterrupt:
        pass
    sys.stdout.flush()
    return 0
