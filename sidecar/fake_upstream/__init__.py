"""A fake OpenAI-compatible upstream for tests and benchmarks, served over real loopback HTTP.

It answers deterministically (the text echoes the last user message), streams token by token with
configurable latency in any valid SSE framing (`SseStyle`), and injects faults (error statuses, resets, cut streams, hangs, garbage, slow
first byte) set at start, at run time through `/_fake/*` admin routes, or per request with the
`X-Fake-Fault` header. `GET /_fake/stats` shows what it received.
"""

from sidecar.fake_upstream.app import STATE, ServerState, build_app
from sidecar.fake_upstream.behaviour import (
    FAULT_HEADER,
    FakeBehaviour,
    FakeUpstreamError,
    Fault,
    parse_fault_spec,
)
from sidecar.fake_upstream.embeddings import embed
from sidecar.fake_upstream.framing import SseStyle
from sidecar.fake_upstream.runner import (
    FakeUpstream,
    FakeUpstreamThread,
    serve_until_signal,
    start_fake_upstream_thread,
)

__all__ = [
    "FAULT_HEADER",
    "STATE",
    "FakeBehaviour",
    "FakeUpstream",
    "FakeUpstreamError",
    "FakeUpstreamThread",
    "Fault",
    "ServerState",
    "SseStyle",
    "build_app",
    "embed",
    "parse_fault_spec",
    "serve_until_signal",
    "start_fake_upstream_thread",
]
