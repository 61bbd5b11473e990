"""The OpenAI endpoints: validate, forward, relay, and hand one traffic record to the log."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from core.tag_policy import TagPolicy
from sidecar.asgi import (
    JSON_HEADERS,
    SSE_HEADERS,
    ClientDisconnected,
    Receive,
    Scope,
    Send,
    read_body,
    send_bytes,
    send_error,
)
from sidecar.errors import (
    InternalError,
    SidecarError,
    TrafficLogFull,
    UnsupportedMediaType,
    UpstreamParseFailure,
)
from sidecar.forwarding import Forwarder, Started
from sidecar.pipeline import Exchange, Reply, Stage, StreamFilter
from sidecar.relay import relay_stream
from sidecar.stream_events import UpstreamEvents, read_stream
from sidecar.traffic.record import RawTraffic
from sidecar.validation import parse_json_object, validate_chat, validate_completion, validate_embeddings

log = logging.getLogger("tollgate.sidecar")
Validator = Callable[[dict[str, Any]], None]
_TAG_HEADERS = {
    b"x-tollgate-user": "user",
    b"x-tollgate-feature": "feature",
    b"x-tollgate-segment": "segment",
    b"x-tollgate-prompt": "prompt",
    b"x-tollgate-prompt-version": "prompt_version",
    b"x-request-id": "request_id",
    b"traceparent": "traceparent",
}
_RAW_TAG_CHARS = 4_096


class Endpoint:
    """One proxied OpenAI endpoint (`/chat/completions`, `/completions`, `/embeddings`)."""

    def __init__(self, name: str, upstream_path: str, validate: Validator, runtime: Any) -> None:
        self.name = name
        self.upstream_path = upstream_path
        self.validate = validate
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started_at = time.time()
        t0 = time.perf_counter()
        tags, content_length, content_type = _read_headers(scope)
        policy = self.runtime.tags
        client_id = tags.pop("request_id", None)
        request_id = client_id or uuid.uuid4().hex
        stored_id = policy.clean(client_id) or request_id  # the header echoes the client's own id
        record = RawTraffic(request_id=stored_id, started_at=started_at, endpoint=self.name, status=0, latency_ms=0.0)
        _apply_tags(record, tags, policy)
        head = JSON_HEADERS + [(b"x-request-id", request_id.encode())]
        traceparent = tags.pop("traceparent", None)
        usage: list[Any] = [None, None, None]  # tokens in, tokens out, finish reasons (as reported upstream)
        staged: list[Any] = []  # the exchange and the stages that ran, when there are stages
        try:
            await self._handle(scope, receive, send, record, head, content_length, content_type, t0, usage, staged)
        except SidecarError as error:
            response_started = record.status != 0
            record.status = error.status if not response_started else record.status
            record.error_class = error.error_class
            record.error_message = error.message
            if not response_started:
                await send_error(send, error, head[1:])
        except ClientDisconnected:
            record.status = 499
            record.error_class = "cancelled"
            record.error_message = "client disconnected before sending its whole request"
        except Exception as exc:  # boundary: never let one request take the worker down
            log.exception("internal error while handling %s", record.request_id)
            response_started = record.status != 0
            record.status = 500 if not response_started else record.status
            record.error_class = "internal_error"
            record.error_message = f"{exc.__class__.__name__}: {exc}"
            if not response_started:
                await send_error(send, InternalError("internal error in the sidecar; see its log"), head[1:])
        finally:
            record.latency_ms = (time.perf_counter() - t0) * 1000.0
            if staged:
                _finish_stages(staged[0], staged[1])
            traffic = self.runtime.traffic
            if traffic is not None:
                traffic.submit(record)
            metrics = self.runtime.metrics
            if metrics is not None:
                metrics.observe(record, usage[0], usage[1])
            tracer = self.runtime.tracer
            if tracer is not None:
                tracer.record(record, traceparent, usage[0], usage[1], usage[2])

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        record: RawTraffic,
        head: list[tuple[bytes, bytes]],
        content_length: int | None,
        content_type: bytes | None,
        t0: float,
        usage: list[Any],
        staged: list[Any],
    ) -> None:
        settings = self.runtime.settings
        traffic = self.runtime.traffic
        if traffic is not None and settings.traffic.when_full == "refuse" and not traffic.admits():
            raise TrafficLogFull("the traffic log cannot store requests right now (storage full); retry later")
        if content_type is not None and b"json" not in content_type:
            raise UnsupportedMediaType(f"Content-Type must be application/json, got {content_type.decode(errors='replace')}")
        body = await read_body(receive, settings.sidecar.max_body_bytes, content_length)
        record.request_body = body
        payload = parse_json_object(body)
        record.requested_model = payload.get("model") if isinstance(payload.get("model"), str) else None
        if record.user is None and isinstance(payload.get("user"), str):
            record.user = self.runtime.tags.user(payload["user"])
        self.validate(payload)
        stream = bool(payload.get("stream"))
        record.stream = stream
        exchange: Exchange | None = None
        stages: list[Stage] = self.runtime.stages
        if stages:
            exchange = Exchange(self.name, payload, body, record, _all_headers(scope), stream, usage=usage)
            exchange.resend = lambda changed: self._resend(exchange, changed)
            staged.extend((exchange, []))
            answered = await _run_requests(stages, exchange, staged[1])
            head = head + exchange.response_headers
            if answered is not None:
                await self._send_reply(answered, send, record, head, usage, exchange, staged[1][:-1])
                return
            payload, body = exchange.payload, exchange.request_body()
        forwarder: Forwarder = self.runtime.forwarder
        started = await forwarder.start(self.upstream_path, payload, body)
        _note_started(record, started)
        try:
            if stream and started.response.status == 200:
                filters = _stream_filters(staged[1], exchange) if staged else ()
                await self._relay(started, payload, send, receive, record, head, t0, usage, filters)
            else:
                await self._respond(started, send, record, head, usage, exchange, staged[1] if staged else ())
        finally:
            started.deployment.outstanding -= 1

    async def _resend(self, exchange: Exchange, payload: dict[str, Any]) -> Reply:
        """Ask an upstream again (a stage's retry or fallback); the answer is read whole."""
        record = exchange.record
        attempts = record.attempts
        started = await self.runtime.forwarder.start(self.upstream_path, payload, orjson.dumps(payload))
        _note_started(record, started)
        record.attempts += attempts
        try:
            body = await started.response.read()
        finally:
            started.response.release()
            started.deployment.outstanding -= 1
        return Reply(started.response.status, body)

    async def _send_reply(
        self,
        reply: Reply,
        send: Send,
        record: RawTraffic,
        head: list,
        usage: list[Any],
        exchange: Exchange,
        stages: Sequence[Stage],
    ) -> None:
        """Answer with a reply a stage made (a cache hit), after the earlier stages' `on_reply`."""
        if not reply.sse:
            for stage in reversed(stages):
                reply = await stage.on_reply(exchange, reply)
        exchange.reply = reply
        record.status = reply.status
        if reply.sse:
            record.response_chunks = [reply.body]
            _take_stream_usage(read_stream(record.response_chunks), usage)
            headers = SSE_HEADERS + head[1:] + reply.headers
        else:
            record.response_body = reply.body
            if reply.status == 200:
                _take_usage(reply.document(), usage)
            headers = head + reply.headers
        await send_bytes(send, reply.status, reply.body, headers)

    async def _respond(
        self,
        started: Started,
        send: Send,
        record: RawTraffic,
        head: list,
        usage: list[Any],
        exchange: Exchange | None = None,
        stages: Sequence[Stage] = (),
    ) -> None:
        response = started.response
        try:
            body = await response.read()
        finally:
            response.release()
        status = response.status
        if stages and exchange is not None:
            reply = Reply(status, body)
            for stage in reversed(stages):
                reply = await stage.on_reply(exchange, reply)
            exchange.reply = reply
            status, body = reply.status, reply.body
            head = head + reply.headers
        record.response_body = body
        if status == 200:
            try:
                document = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise UpstreamParseFailure(f"{started.deployment.label} answered 200 with a body that is not JSON") from exc
            _take_usage(document, usage)
        else:
            # A non-retryable upstream answer (e.g. 400 for a parameter it rejects) is passed through as is.
            record.error_class = "client_error" if 400 <= status < 500 else "upstream_error"
            record.error_message = f"upstream answered HTTP {status}"
        record.status = status
        await send_bytes(send, status, body, head + [(b"x-tollgate-attempts", str(started.attempts).encode())])

    async def _relay(
        self,
        started: Started,
        payload: dict,
        send: Send,
        receive: Receive,
        record: RawTraffic,
        head: list,
        t0: float,
        usage: list[Any],
        filters: Sequence[StreamFilter] = (),
    ) -> None:
        headers = SSE_HEADERS + head[1:] + [(b"x-tollgate-attempts", str(started.attempts).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        record.status = 200
        wants_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
        outcome = await relay_stream(started.response, send, receive, forward_usage=wants_usage, filters=filters)
        record.response_chunks = outcome.chunks
        if outcome.events is not None:
            _take_stream_usage(outcome.events, usage)
        if outcome.first_event_at is not None:
            record.ttft_ms = (outcome.first_event_at - t0) * 1000.0
        record.error_class = outcome.error_class
        record.error_message = outcome.error_message


def _note_started(record: RawTraffic, started: Started) -> None:
    record.attempts = started.attempts
    record.served_model = started.route.name
    record.deployment = started.deployment.label
    record.provider = started.deployment.provider


async def _run_requests(stages: Sequence[Stage], exchange: Exchange, ran: list[Stage]) -> Reply | None:
    """Each stage's `on_request` in order until one answers; `ran` collects the stages that ran."""
    for stage in stages:
        ran.append(stage)
        reply = await stage.on_request(exchange)
        if reply is not None:
            return reply
    return None


def _stream_filters(stages: Sequence[Stage], exchange: Exchange | None) -> list[StreamFilter]:
    if exchange is None:
        return []
    return [f for stage in stages if (f := stage.stream_filter(exchange)) is not None]


def _finish_stages(exchange: Exchange, ran: Sequence[Stage]) -> None:
    """`on_done` of every stage that ran; a failing stage is logged and never loses the traffic record."""
    for stage in ran:
        try:
            stage.on_done(exchange)
        except Exception:  # boundary: background bookkeeping must not break the response or the log
            log.exception("stage %s failed after request %s", stage.name, exchange.record.request_id)


def _all_headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1"): value.decode("utf-8", "replace") for name, value in scope["headers"]}


def _take_usage(document: object, usage: list[Any]) -> None:
    """Copy token counts and finish reasons of a response document into `usage` (for metrics and traces)."""
    if isinstance(document, dict) and isinstance(document.get("choices"), list):
        reasons = [c.get("finish_reason") for c in document["choices"] if isinstance(c, dict) and c.get("finish_reason")]
        usage[2] = reasons or usage[2]
    if isinstance(document, dict) and isinstance(document.get("usage"), dict):
        reported = document["usage"]
        usage[0] = reported.get("prompt_tokens") if isinstance(reported.get("prompt_tokens"), int) else None
        usage[1] = reported.get("completion_tokens") if isinstance(reported.get("completion_tokens"), int) else None


def _take_stream_usage(events: UpstreamEvents, usage: list[Any]) -> None:
    """Token counts and finish reasons of a stream, as its reader noted them."""
    _take_usage(events.usage, usage)
    usage[2] = events.finish_reasons or None


def _read_headers(scope: Scope) -> tuple[dict[str, str], int | None, bytes | None]:
    tags: dict[str, str] = {}
    content_length: int | None = None
    content_type: bytes | None = None
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                content_length = int(value)
            except ValueError:
                content_length = None
        elif name == b"content-type":
            content_type = value
        elif name.startswith(b"x-") or name == b"traceparent":
            key = _TAG_HEADERS.get(name)
            if key is not None and value:
                # Cut generously here; the tag policy redacts, then cuts to the stored length.
                tags[key] = value.decode("utf-8", "replace")[:_RAW_TAG_CHARS]
    return tags, content_length, content_type


def _apply_tags(record: RawTraffic, tags: dict[str, str], policy: TagPolicy) -> None:
    if not tags:
        return
    record.user = policy.user(tags.get("user"))
    record.feature = policy.clean(tags.get("feature"))
    record.segment = policy.clean(tags.get("segment"))
    prompt = tags.get("prompt")
    if prompt:
        name, _, version = prompt.partition("@")  # split first: `name@version` is no e-mail address
        record.prompt_name = policy.clean(name) or None
        record.prompt_version = policy.clean(version or tags.get("prompt_version"), 100)


def make_endpoints(runtime: Any) -> dict[str, Endpoint]:
    """The proxied endpoints keyed by their public path (with and without the `/v1` prefix)."""
    endpoints = {
        "/chat/completions": Endpoint("chat.completions", "/chat/completions", validate_chat, runtime),
        "/completions": Endpoint("completions", "/completions", validate_completion, runtime),
        "/embeddings": Endpoint("embeddings", "/embeddings", validate_embeddings, runtime),
    }
    return {**endpoints, **{"/v1" + path: endpoint for path, endpoint in endpoints.items()}}
