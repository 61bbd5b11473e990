"""The aiohttp application of the fake upstream: OpenAI-compatible endpoints, faults and admin routes.

API routes: POST /v1/chat/completions, POST /v1/completions, POST /v1/embeddings, GET /v1/models,
GET /health, GET /metrics (vLLM's names; see `engine`). Admin routes (never counted, never faulted):
GET|POST /_fake/behaviour, POST /_fake/script, POST /_fake/reset, GET /_fake/stats, GET|POST /_fake/engine.

Run it with `handler_cancellation=True` (the runner does): a handler that dropped or is holding a
connection ends when the client goes away instead of living on.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from sidecar.fake_upstream.behaviour import (
    FAULT_HEADER,
    BehaviourState,
    FakeBehaviour,
    FakeUpstreamError,
    Fault,
)
from sidecar.fake_upstream.engine import EngineState
from sidecar.fake_upstream.framing import SseStyle, frame_event, network_writes
from sidecar.fake_upstream.replies import build_reply
from sidecar.fake_upstream.stats import DEFAULT_HISTORY, RequestLog
from sidecar.fake_upstream.wire import DONE_EVENT, JSON_HEADERS, SSE_HEADERS, Reply, error_reply

_HEALTH_BODY = orjson.dumps({"status": "ok"})
_GARBAGE_BODY = b'{"id": "chatcmpl-garbage", "choices": [ <html>this is not JSON'
_GARBAGE_EVENTS = b"data: " + _GARBAGE_BODY + b"\n\n" + DONE_EVENT
_RST_LINGER = struct.pack("ii", 1, 0)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class ServerState:
    """The mutable state of one fake upstream: its behaviours and what it has received."""

    behaviours: BehaviourState
    log: RequestLog
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def stats(self) -> dict[str, Any]:
        """What `GET /_fake/stats` returns."""
        return {**self.log.snapshot(), "script_pending": self.behaviours.pending}

    def reset(self) -> None:
        """Start behaviour, empty script, empty statistics."""
        self.behaviours.reset()
        self.log.clear()


STATE = web.AppKey("fake_upstream_state", ServerState)
ENGINE = web.AppKey("fake_upstream_engine", EngineState)


def build_app(behaviour: FakeBehaviour | None = None, *, history: int = DEFAULT_HISTORY) -> web.Application:
    """The fake upstream's application; its `ServerState` is `app[STATE]`."""
    app = web.Application()
    app[STATE] = ServerState(BehaviourState(behaviour or FakeBehaviour()), RequestLog(history))
    app[ENGINE] = EngineState()
    app.on_shutdown.append(_on_shutdown)
    app.router.add_post("/v1/chat/completions", _api("chat"))
    app.router.add_post("/v1/completions", _api("completions"))
    app.router.add_post("/v1/embeddings", _api("embeddings"))
    app.router.add_get("/v1/models", _api("models"))
    app.router.add_get("/health", _health)
    app.router.add_get("/_fake/behaviour", _get_behaviour)
    app.router.add_post("/_fake/behaviour", _admin(_post_behaviour))
    app.router.add_post("/_fake/script", _admin(_post_script))
    app.router.add_post("/_fake/reset", _post_reset)
    app.router.add_get("/_fake/stats", _get_stats)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/_fake/engine", _get_engine)
    app.router.add_post("/_fake/engine", _post_engine)
    return app


async def _on_shutdown(app: web.Application) -> None:
    app[STATE].stopping.set()  # releases hanging handlers so shutdown does not wait for them


def _api(endpoint: str) -> Handler:
    if endpoint not in ("chat", "completions"):

        async def handle(request: web.Request) -> web.StreamResponse:
            return await _serve(request, endpoint)

        return handle

    async def generate(request: web.Request) -> web.StreamResponse:
        engine = request.app[ENGINE]
        prefill_s = engine.admit(await request.read() if engine.prefix_cache_blocks else b"")
        try:
            if prefill_s:
                await asyncio.sleep(prefill_s)
            return await _serve(request, endpoint)
        finally:
            engine.release()

    return generate


async def _serve(request: web.Request, endpoint: str) -> web.StreamResponse:
    state = request.app[STATE]
    body = await request.read()
    try:
        behaviour = state.behaviours.resolve(request.headers.get(FAULT_HEADER))
    except FakeUpstreamError as exc:
        state.log.record(request.method, request.path, request.headers, body, Fault.NONE)
        return _send(error_reply(400, f"{FAULT_HEADER}: {exc}", code="invalid_fake_fault"))
    fault = behaviour.fault
    state.log.record(request.method, request.path, request.headers, body, fault)
    if fault is Fault.SLOW_FIRST_BYTE:
        await asyncio.sleep(behaviour.slow_first_byte_s)
    elif fault is not Fault.NONE and fault is not Fault.CUT:
        return await _inject(request, state, behaviour, endpoint, body)
    reply = build_reply(endpoint, body, behaviour)
    if reply.stream:
        return await _stream(request, state, reply, behaviour)
    return await _respond(request, state, reply, behaviour)


def _send(reply: Reply) -> web.Response:
    headers = {**JSON_HEADERS, **dict(reply.headers)} if reply.headers else JSON_HEADERS
    return web.Response(body=reply.body, status=reply.status, headers=headers)


async def _respond(
    request: web.Request, state: ServerState, reply: Reply, behaviour: FakeBehaviour
) -> web.StreamResponse:
    if reply.status == 200:
        delay = reply.generation_time(behaviour.ttft_s, behaviour.inter_token_s)
        if delay:
            await asyncio.sleep(delay)
    if behaviour.fault is not Fault.CUT:
        return _send(reply)
    # Promise the whole body, send half of it, then close: the client sees a truncated response.
    response = web.StreamResponse(status=reply.status, headers=JSON_HEADERS)
    response.content_length = len(reply.body)
    await response.prepare(request)
    await response.write(reply.body[: len(reply.body) // 2])
    return await _drop(request, state, reset=False)


async def _stream(
    request: web.Request, state: ServerState, reply: Reply, behaviour: FakeBehaviour
) -> web.StreamResponse:
    response = web.StreamResponse(status=200, headers=SSE_HEADERS)
    await response.prepare(request)
    cut = behaviour.fault is Fault.CUT
    count = min(behaviour.cut_after, len(reply.events)) if cut else len(reply.events)
    pending: list[bytes] = []
    style = behaviour.sse_style
    try:
        for index in range(count):
            delay = reply.delay_before(index, behaviour.ttft_s, behaviour.inter_token_s)
            if delay:
                # Send what is ready before sleeping; with no delays the whole stream is one write.
                if pending:
                    await _write(response, b"".join(pending), style)
                    pending.clear()
                await asyncio.sleep(delay)
            pending.append(frame_event(reply.events[index], style, index))
        if pending:
            await _write(response, b"".join(pending), style)
        if cut:
            return await _drop(request, state, reset=False)
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client went away mid-stream: nothing left to do
    return response


async def _write(response: web.StreamResponse, payload: bytes, style: SseStyle) -> None:
    for piece in network_writes(payload, style):
        await response.write(piece)


async def _inject(
    request: web.Request, state: ServerState, behaviour: FakeBehaviour, endpoint: str, body: bytes
) -> web.StreamResponse:
    fault = behaviour.fault
    if fault is Fault.STATUS:
        status = behaviour.status
        retry = behaviour.retry_after_s if status == 429 else None
        code = "rate_limit_exceeded" if status == 429 else "fake_fault"
        return _send(
            error_reply(status, f"fake upstream injected status {status}", code=code, retry_after_s=retry)
        )
    if fault is Fault.GARBAGE:
        if not build_reply(endpoint, body, behaviour).stream:
            return web.Response(body=_GARBAGE_BODY, headers=JSON_HEADERS)
        response = web.StreamResponse(status=200, headers=SSE_HEADERS)
        await response.prepare(request)
        await response.write(_GARBAGE_EVENTS)
        await response.write_eof()
        return response
    if fault is Fault.HANG:
        await state.stopping.wait()  # or until the client disconnects and the handler is cancelled
    return await _drop(request, state, reset=True)


async def _drop(request: web.Request, state: ServerState, *, reset: bool) -> web.StreamResponse:
    """End the connection without finishing the response: RST for `reset`, else a plain close."""
    transport = request.transport
    if transport is not None and not transport.is_closing():
        if reset:
            sock = transport.get_extra_info("socket")
            try:
                # Zero linger turns close into a TCP reset, the way a crashed upstream looks.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST_LINGER)
            except (AttributeError, OSError):
                pass
            transport.abort()
        else:
            transport.close()  # flushes what was written, then FIN
    # The connection is gone; aiohttp cancels this handler when it notices. Until then, hold on.
    await state.stopping.wait()
    return web.Response(status=499)


async def _health(request: web.Request) -> web.Response:
    request.app[STATE].log.count(request.path)
    if not request.app[ENGINE].healthy:
        return _send(error_reply(503, "fake engine is unhealthy", code="unhealthy"))
    return web.Response(body=_HEALTH_BODY, headers=JSON_HEADERS)


async def _metrics(request: web.Request) -> web.Response:
    request.app[STATE].log.count(request.path)
    model = request.app[STATE].behaviours.defaults.models[0]
    return web.Response(body=request.app[ENGINE].metrics_text(model), content_type="text/plain", charset="utf-8")


async def _get_engine(request: web.Request) -> web.Response:
    return _json(request.app[ENGINE].snapshot())


async def _post_engine(request: web.Request) -> web.Response:
    try:
        return _json(request.app[ENGINE].update(orjson.loads(await request.read())))
    except (orjson.JSONDecodeError, FakeUpstreamError) as exc:
        return _send(error_reply(400, str(exc), code="invalid_fake_admin_request"))


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, headers=JSON_HEADERS)


def _admin(handler: Callable[[web.Request, ServerState, Any], Any]) -> Handler:
    """Wrap an admin handler: parse the JSON body, answer a bad request with 400."""

    async def handle(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        try:
            payload = orjson.loads(await request.read())
            return _json(handler(request, state, payload))
        except (orjson.JSONDecodeError, FakeUpstreamError) as exc:
            return _send(error_reply(400, str(exc), code="invalid_fake_admin_request"))

    return handle


def _post_behaviour(request: web.Request, state: ServerState, payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise FakeUpstreamError("the behaviour patch must be a JSON object")
    return state.behaviours.update(payload).to_dict()


def _post_script(request: web.Request, state: ServerState, payload: Any) -> dict[str, Any]:
    entries = payload.get("script") if isinstance(payload, dict) else payload
    if not isinstance(entries, list):
        raise FakeUpstreamError('the script must be a JSON array (or {"script": [...]})')
    return {"script_pending": state.behaviours.enqueue(entries)}


async def _get_behaviour(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return _json({**state.behaviours.defaults.to_dict(), "script_pending": state.behaviours.pending})


async def _post_reset(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.reset()
    request.app[ENGINE].reset()
    return _json(state.behaviours.defaults.to_dict())


async def _get_stats(request: web.Request) -> web.Response:
    return _json(request.app[STATE].stats())
