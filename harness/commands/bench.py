"""Load-test an OpenAI-compatible endpoint: TTFT, inter-token latency, TPOT, end-to-end, goodput; compare runs."""

from __future__ import annotations

import argparse
import sys

from core.settings import load_settings
from harness.bench import (
    MODES,
    BenchError,
    BenchPlan,
    build_workload,
    compare_runs,
    format_run,
    load_reference,
    make_progress,
    parse_rules,
    parse_slos,
    report_only_rules,
    run_bench,
    save_baseline,
    store_run,
    write_csv,
    write_json,
)
from harness.commands import add_config_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    target = parser.add_argument_group("target")
    target.add_argument("--url", required=True, help="base URL of the endpoint, e.g. http://127.0.0.1:8000/v1")
    target.add_argument("--model", required=True, help="model name sent in every request")
    target.add_argument("--api-key", help="sent as 'Authorization: Bearer KEY'")
    target.add_argument("--timeout", type=float, default=300.0, metavar="S", help="per-request timeout (300)")
    load = parser.add_argument_group("load")
    load.add_argument("--mode", choices=MODES, default="sequential", help="load mode (default sequential)")
    load.add_argument("--requests", type=int, metavar="N",
                      help="requests per level (default 50 when no --duration; caps rate mode too)")
    load.add_argument("--duration", type=float, metavar="S", help="seconds per level (rate mode default 10)")
    load.add_argument("--concurrency", default="1", metavar="C1,C2,..",
                      help="sweep levels: requests in flight, e.g. 1,4,16")
    load.add_argument("--rate", type=float, metavar="R", help="rate mode: Poisson arrivals per second")
    load.add_argument("--max-concurrency", type=int, default=256, metavar="N",
                      help="rate mode: most requests in flight; later arrivals wait in the client (256)")
    load.add_argument("--warmup", type=int, default=0, metavar="N", help="unrecorded requests sent first")
    load.add_argument("--seed", type=int, default=0, help="seed of the rate mode's arrival times")
    work = parser.add_argument_group("workload")
    source = work.add_mutually_exclusive_group()
    source.add_argument("--prompt", help="the user message of every request")
    source.add_argument("--dataset", metavar="FILE",
                        help=".txt (one prompt a line) or .jsonl/.csv/.parquet with messages or prompt")
    work.add_argument("--max-tokens", type=int, default=128, metavar="N", help="output length cap (128)")
    work.add_argument("--temperature", type=float, help="sampling temperature")
    work.add_argument("--ignore-eos", action="store_true",
                      help="ask the server to generate exactly --max-tokens (vLLM, llama.cpp)")
    out = parser.add_argument_group("results")
    out.add_argument("--slo", metavar="NAME=MS,..", help="goodput SLOs, e.g. ttft_ms=500,e2e_ms=5000")
    out.add_argument("--json", metavar="FILE", help="write the run (summaries and every request) as JSON")
    out.add_argument("--csv", metavar="FILE", help="write one row per request as CSV")
    out.add_argument("--save", metavar="NAME", help="also store the run as the named baseline")
    out.add_argument("--compare", metavar="REF", help="compare with a baseline name, a .json file or 'latest'")
    out.add_argument("--fail-on-regression", metavar="RULES",
                     help="e.g. ttft_p99:+10%%,e2e_p50:+20ms,goodput:-5%%; exit 1 when one fails")
    out.add_argument("--no-store", action="store_true", help="do not keep the run under <data_dir>/bench/")
    out.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="progress line on stderr (default: when stderr is a terminal)")
    add_config_argument(parser)


def run(args: argparse.Namespace) -> int:
    # Everything that can be wrong in the input is checked before the first request is sent.
    plan = BenchPlan(
        mode=args.mode, requests=args.requests, duration_s=args.duration,
        concurrency=_concurrency(args.concurrency), rate=args.rate, max_concurrency=args.max_concurrency,
        warmup=args.warmup, seed=args.seed, timeout_s=args.timeout,
    ).checked()
    slos = parse_slos(args.slo)
    rules = parse_rules(args.fail_on_regression)
    if rules and not args.compare:
        raise BenchError("--fail-on-regression needs --compare REF (a baseline name, file or 'latest')")
    params: dict[str, object] = {}
    if args.temperature is not None:
        params["temperature"] = args.temperature
    if args.ignore_eos:
        params["ignore_eos"] = True
    workload = build_workload(args.model, prompt=args.prompt, dataset=args.dataset, max_tokens=args.max_tokens,
                              params=params)
    data_dir = load_settings(args.config).data_dir
    baseline = load_reference(args.compare, data_dir) if args.compare else None

    result = run_bench(args.url, workload, plan, slos=slos, api_key=args.api_key,
                       progress=make_progress(args.progress))
    print(format_run(result))
    if not result.records or not any(record.ok for record in result.records):
        first = next((r.error for r in result.records if r.error), "no request was sent")
        raise BenchError(f"every request failed ({len(result.records)} sent); first error: {first}")
    if args.json:
        write_json(result, args.json)
    if args.csv:
        write_csv(result, args.csv)
    if not args.no_store:
        print(f"\nstored: {store_run(result, data_dir)}", file=sys.stderr)
    if args.save:
        print(f"baseline {args.save!r}: {save_baseline(result, data_dir, args.save)}", file=sys.stderr)
    if baseline is None:
        return 0
    comparison = compare_runs(result, baseline, rules or report_only_rules())
    print(f"\ncompared with {args.compare}:")
    print("\n".join(comparison.lines()))
    return 1 if comparison.failed else 0


def _concurrency(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise BenchError(f"--concurrency must be integers separated by commas, got {text!r}") from None
    if not levels:
        raise BenchError("--concurrency needs at least one level")
    return levels
