"""What the request path hands to the traffic log: raw bytes and timings, nothing parsed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

ErrorClass = Literal[
    "upstream_error",
    "timeout",
    "client_error",
    "guardrail",
    "parse_failure",
    "stream_error",
    "internal_error",
    "traffic_log_full",
]

ERROR_CLASSES: frozenset[str] = frozenset(get_args(ErrorClass))

TRAFFIC_LOG_FULL = "traffic_log_full"
"""The error class of a request refused because the traffic log's memory buffer is full: it was never
served, so the log counts it (`refused`) instead of storing it, and it does not add to the full buffer."""

CACHE_SERVED: frozenset[str] = frozenset({"hit", "semantic"})
"""`cache_status` values of answers the sidecar served itself: no upstream call, no tokens billed."""

TrafficRow = dict[str, Any]
"""A finalised row of the `traffic` table: every column present, redacted, ready to insert or spool."""


@dataclass(slots=True)
class RawTraffic:
    """One request as the request path saw it.

    Filling it costs attribute stores only: usage, cost, text and redaction are worked out later in
    the writer thread. `response_body` holds a non-stream answer; `response_chunks` the raw SSE bytes
    of a stream, exactly as relayed (chunk boundaries may fall anywhere). `row_id` is the id of the row
    to store; when it is None the finaliser draws a random one. The writer process's sender assigns it
    before a batch leaves the sidecar, so a batch stored twice (sent, then re-spooled because its
    acknowledgement never came) is still one row per request.
    """

    request_id: str
    started_at: float
    endpoint: str
    status: int
    latency_ms: float
    requested_model: str | None = None
    served_model: str | None = None
    deployment: str | None = None
    provider: str | None = None
    user: str | None = None
    feature: str | None = None
    segment: str | None = None
    prompt_name: str | None = None
    prompt_version: str | None = None
    stream: bool = False
    error_class: str | None = None
    error_message: str | None = None
    request_body: bytes | None = None
    response_body: bytes | None = None
    response_chunks: list[bytes] = field(default_factory=list)
    ttft_ms: float | None = None
    attempts: int = 1
    key_id: str | None = None
    variant: str | None = None
    experiment: str | None = None
    shadow_of: str | None = None
    route_reason: str | None = None
    cache_status: str | None = None
    guard_events: list[dict[str, Any]] | None = None
    confidence: float | None = None
    review_reason: str | None = None
    """`source: reason` (e.g. `guard: pii in output`); the writer turns it into a review queue item."""
    row_id: str | None = None  # last: the writer wire format builds records positionally, then sets it
