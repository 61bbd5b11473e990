"""Micro-benchmark of the traffic log on SQLite: submit() cost on the request path, rows/s stored.

Run: python benchmarks/traffic_writer.py [--rows 50000] [--stream]
Prints figures; asserts nothing (machines are noisy).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import orjson

from core.pricing import PriceBook
from core.settings import Price, Settings, TrafficSettings
from sidecar.traffic import RawTraffic, RecordFinaliser, TrafficLog

REQUEST = orjson.dumps(
    {
        "model": "bench",
        "messages": [{"role": "user", "content": "Summarise: call me at +44 20 7946 0958. " * 4}],
    }
)
RESPONSE = orjson.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "A short summary. " * 8}}],
        "usage": {"prompt_tokens": 60, "completion_tokens": 40, "total_tokens": 100},
    }
)
CHUNKS = [b'data: {"choices":[{"index":0,"delta":{"content":"word "}}]}\n\n' for _ in range(40)] + [
    b'data: {"choices":[],"usage":{"prompt_tokens":60,"completion_tokens":40}}\n\ndata: [DONE]\n\n'
]


def make_raw(index: int, stream: bool) -> RawTraffic:
    return RawTraffic(
        request_id=f"req-{index}",
        started_at=time.time(),
        endpoint="chat.completions",
        status=200,
        latency_ms=12.5,
        requested_model="bench",
        served_model="bench",
        user="bench-user",
        stream=stream,
        request_body=REQUEST,
        response_body=None if stream else RESPONSE,
        response_chunks=list(CHUNKS) if stream else [],
        ttft_ms=3.0 if stream else None,
    )


def bench_submit_and_write(settings: Settings, rows: int, stream: bool) -> None:
    raws = [make_raw(index, stream) for index in range(rows)]
    log = TrafficLog(settings).start()
    time.sleep(0.5)  # let the writer open and migrate the database first
    started = time.perf_counter()
    costs = []
    for raw in raws:
        before = time.perf_counter_ns()
        log.submit(raw)
        costs.append(time.perf_counter_ns() - before)
    submitted = time.perf_counter()
    log.close()
    done = time.perf_counter()
    stats = log.stats
    costs.sort()
    print(
        f"submit(): mean {statistics.fmean(costs) / 1000:.2f} us, p50 {costs[len(costs) // 2] / 1000:.2f} us, "
        f"p99 {costs[int(len(costs) * 0.99)] / 1000:.2f} us per call"
    )
    print(
        f"submitted {rows} in {submitted - started:.3f} s; all stored after {done - started:.3f} s "
        f"-> {rows / (done - started):,.0f} rows/s end to end"
    )
    print(f"stats: {stats}")


def bench_finalise(settings: Settings, rows: int, stream: bool) -> None:
    finaliser = RecordFinaliser(settings, PriceBook(settings))
    raws = [make_raw(index, stream) for index in range(rows)]
    started = time.perf_counter()
    for raw in raws:
        finaliser.finalise(raw)
    elapsed = time.perf_counter() - started
    print(
        f"finalise (usage, cost, redaction): {elapsed / rows * 1e6:.1f} us per row, {rows / elapsed:,.0f} rows/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--stream", action="store_true", help="log streamed responses (SSE chunks)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(
            data_dir=Path(folder),
            prices={"bench": Price(input_per_mtok=1.0, output_per_mtok=2.0)},
            traffic=TrafficSettings(queue_size=max(args.rows, 1)),
        )
        print(f"traffic log benchmark: {args.rows} {'stream' if args.stream else 'non-stream'} rows, SQLite")
        bench_finalise(settings, min(args.rows, 10_000), args.stream)
        bench_submit_and_write(settings, args.rows, args.stream)


if __name__ == "__main__":
    main()
