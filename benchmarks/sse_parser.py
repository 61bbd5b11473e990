"""The relay's per-event cost: the event-stream parser (`core.sse`) against the code it replaced.

    python benchmarks/sse_parser.py            # ~10 s
    python benchmarks/sse_parser.py --events 20000

A typical chat-completions token stream (chunks of ~230 bytes as vLLM and OpenAI send them) is fed through:
- `before`: what the relay did per upstream chunk until the parser replaced it — join with the pending bytes,
  find the last blank line, test for `data: [DONE]` (no parsing: it could not read other framings, and it
  relayed `data: <html>` untouched);
- `parser`: `EventStreamParser.feed` alone (complete events out of any framing);
- `relay`: `UpstreamEvents.feed`, what the relay now runs per chunk: the parser, each event's JSON parsed
  (non-JSON ends the stream; usage and finish reasons are noted from it) and the canonical bytes built.
Each is timed over the same chunks in several framings and chunkings; the figure is ns per event, the median
of 5 repetitions. No pass/fail: machines are noisy, the comparison in one run is what counts.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import orjson

from core.sse import EventStreamParser
from sidecar.stream_events import UpstreamEvents


def token_events(count: int) -> list[bytes]:
    base = {"id": "chatcmpl-8a1f3c", "object": "chat.completion.chunk", "created": 1764700000,
            "model": "Qwen/Qwen2.5-7B-Instruct", "system_fingerprint": None}
    events = [b"data: " + orjson.dumps({**base, "choices": [{"index": 0, "delta": {"content": f" word{i}"},
                                                             "logprobs": None, "finish_reason": None}]}) + b"\n\n"
              for i in range(count)]
    events.append(b"data: " + orjson.dumps({**base, "choices": [], "usage": {
        "prompt_tokens": 20, "completion_tokens": count, "total_tokens": 20 + count}}) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


def before(chunks: list[bytes]) -> bool:
    pending = b""
    saw_done = False  # stays False for `data:[DONE]`: the false `stream_incomplete` this replaced
    for chunk in chunks:
        pending = pending + chunk if pending else chunk
        lf = pending.rfind(b"\n\n")
        crlf = pending.rfind(b"\r\n\r\n")
        cut = crlf + 4 if crlf >= 0 and crlf + 4 > lf + 2 else (lf + 2 if lf >= 0 else -1)
        if cut < 0:
            continue
        ready, pending = pending[:cut], pending[cut:]
        if b"data: [DONE]" in ready:
            saw_done = True
    return saw_done


def parser_only(chunks: list[bytes]) -> None:
    parser = EventStreamParser()
    for chunk in chunks:
        parser.feed(chunk)


def relay(chunks: list[bytes]) -> None:
    events = UpstreamEvents(forward_usage=False)
    for chunk in chunks:
        events.feed(chunk)
    assert events.done and events.usage is not None


def timed(function: Callable[[list[bytes]], object], chunks: list[bytes], events: int) -> float:
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        function(chunks)
        runs.append((time.perf_counter() - start) / events * 1e9)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    args = parser.parse_args()
    events = token_events(args.events)
    joined = b"".join(events)
    cases = {
        "canonical, one event a chunk": events,
        "canonical, 16 events a chunk": [b"".join(events[i : i + 16]) for i in range(0, len(events), 16)],
        "CRLF, one event a chunk": [e.replace(b"\n", b"\r\n") for e in events],
        "no space, one event a chunk": [e.replace(b"data: ", b"data:", 1) for e in events],
        "canonical, 64-byte chunks": [joined[i : i + 64] for i in range(0, len(joined), 64)],
    }
    print(f"{len(events)} events, {len(joined) // len(events)} bytes each on average; ns per event (median of 5)")
    print(f"{'framing':32} {'before':>8} {'parser':>8} {'relay':>8}")
    for name, chunks in cases.items():
        row = [timed(f, chunks, len(events)) for f in (before, parser_only, relay)]
        print(f"{name:32} " + " ".join(f"{value:8.0f}" for value in row))


if __name__ == "__main__":
    main()
