"""The sidecar's ASGI application: lifespan, routing table and the system endpoints."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

from core.settings import Settings
from core.tag_policy import TagPolicy
from sidecar.admission import build_admission
from sidecar.asgi import (
    JSON_HEADERS,
    ClientDisconnected,
    Receive,
    Scope,
    Send,
    request_headers,
    send_bytes,
    send_error,
)
from sidecar.callers import build_identify
from sidecar.errors import InternalError, InvalidRequest, MethodNotAllowed, NotFound, NotReady, SidecarError
from sidecar.forwarding import Forwarder
from sidecar.handlers import make_endpoints
from sidecar.routes import build_extra_routes
from sidecar.runtime import Runtime, build_routes, create_runtime_session, needs_embedded
from sidecar.stages import build_stages

log = logging.getLogger("tollgate.sidecar")


class SidecarApp:
    """An ASGI app. Build it with `create_app(settings)`; run it with uvicorn (`tollgate serve`)."""

    def __init__(self, settings: Settings, *, traffic_factory: Any = None, embedded_factory: Any = None,
                 span_exporter: Any = None, stage_factory: Any = None) -> None:
        self.settings = settings
        self.runtime: Runtime | None = None
        self._traffic_factory = traffic_factory
        self._embedded_factory = embedded_factory
        self._span_exporter = span_exporter
        self._stage_factory = stage_factory or build_stages
        self._endpoints: dict[str, Any] = {}
        self._created = int(time.time())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        endpoint = self._endpoints.get(path)
        if endpoint is not None:
            if scope["method"] != "POST":
                await send_error(send, MethodNotAllowed(f"{path} accepts POST, not {scope['method']}"))
                return
            await endpoint(scope, receive, send)
            return
        runtime = self.runtime
        if runtime is not None and runtime.extra_routes:
            for route in runtime.extra_routes:
                if route.matches(path):
                    await _guarded(route, scope, receive, send)
                    return
        if scope["method"] != "GET":
            await send_error(send, NotFound(f"no route for {scope['method']} {path}"))
            return
        if path == "/healthz":
            await send_bytes(send, 200, b'{"status":"ok"}')
        elif path == "/readyz":
            await self._readyz(send)
        elif path == "/metrics":
            await self._metrics(send)
        elif path in ("/v1/models", "/models"):
            if runtime is not None and runtime.identify is not None:
                try:
                    runtime.identify(request_headers(scope))
                except SidecarError as error:
                    await send_error(send, error)
                    return
            await send_bytes(send, 200, self._models_body(), JSON_HEADERS)
        else:
            await send_error(send, NotFound(f"no route for GET {path}"))

    async def _readyz(self, send: Send) -> None:
        runtime = self.runtime
        ready = runtime is not None and runtime.ready
        detail: dict[str, Any] = {"status": "ready" if ready else "starting"}
        if runtime is not None:
            detail["models"] = sorted(runtime.routes)
            if runtime.traffic is not None:
                detail["traffic"] = runtime.traffic.stats.as_dict()
                if ready and self.settings.traffic.when_full == "refuse" and not runtime.traffic.admits():
                    ready = False  # new requests are refused with 503 traffic_log_full until storage recovers
                    detail["status"] = "traffic_log_full"
        await send_bytes(send, 200 if ready else 503, orjson.dumps(detail))

    async def _metrics(self, send: Send) -> None:
        runtime = self.runtime
        if runtime is None or runtime.metrics is None:
            await send_error(send, NotReady("metrics are not available yet"))
            return
        from sidecar.metrics import CONTENT_TYPE

        await send_bytes(send, 200, runtime.metrics.exposition(), [(b"content-type", CONTENT_TYPE)])

    def _models_body(self) -> bytes:
        routes = self.runtime.routes if self.runtime is not None else {}
        data = [{"id": name, "object": "model", "created": self._created, "owned_by": "tollgate"} for name in sorted(routes)]
        return orjson.dumps({"object": "list", "data": data})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:  # noqa: BLE001 - boundary: report start-up failure to the server in one line
                    log.error("sidecar failed to start: %s", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        """Start the embedded model when needed, open the upstream pool and the traffic log."""
        settings = self.settings
        tags = TagPolicy.from_settings(settings)  # refuses `access.hash_users` without its key, before anything starts
        embedded = None
        embedded_url = None
        if needs_embedded(settings):
            embedded = self._make_embedded()
            await embedded.start()
            embedded_url = embedded.base_url
        session = create_runtime_session(settings)
        try:
            routes = build_routes(settings, session, embedded_url)
        except Exception:
            await session.close()
            if embedded is not None:
                await embedded.stop()
            raise
        runtime = Runtime(settings=settings, session=session, routes=routes, embedded=embedded, tags=tags)
        runtime.forwarder = Forwarder(routes, settings.sidecar, admission=build_admission(settings))
        if settings.traffic.enabled:
            runtime.traffic = self._make_traffic()
            runtime.traffic.start()
        runtime.metrics = build_metrics(runtime)
        runtime.tracer = self._make_tracer()
        runtime.stages = self._stage_factory(runtime)
        runtime.identify = build_identify(runtime)
        runtime.extra_routes = build_extra_routes(runtime)
        self.runtime = runtime
        self._endpoints = make_endpoints(runtime)
        runtime.ready = True
        log.info("sidecar ready with models: %s", ", ".join(sorted(routes)))

    async def shutdown(self) -> None:
        """Flush the traffic log, close the pool and stop the embedded model."""
        runtime = self.runtime
        if runtime is None:
            return
        runtime.ready = False
        for close in reversed(runtime.extra_closers):  # stages' background tasks, then what they used
            await close()
        if runtime.traffic is not None:
            await runtime.traffic.aclose()
        await runtime.session.close()
        if runtime.tracer is not None:
            runtime.tracer.shutdown()
        if runtime.embedded is not None:
            await runtime.embedded.stop()

    def _make_tracer(self) -> Any:
        """Spans only when an OTLP endpoint (or, in tests, an exporter) is configured."""
        from core.telemetry import create_tracer_provider

        provider = create_tracer_provider(self.settings.telemetry, "sidecar", exporter=self._span_exporter)
        if provider is None:
            return None
        from sidecar.tracing import RequestTracer

        return RequestTracer(provider)

    def _make_traffic(self) -> Any:
        if self._traffic_factory is not None:
            return self._traffic_factory(self.settings)
        from sidecar.traffic import create_traffic_log

        return create_traffic_log(self.settings)

    def _make_embedded(self) -> Any:
        if self._embedded_factory is not None:
            return self._embedded_factory(self.settings)
        from sidecar.embedded.supervisor import EmbeddedModel

        return EmbeddedModel(self.settings.embedded, self.settings.data_dir)


async def _guarded(route: Any, scope: Scope, receive: Receive, send: Send) -> None:
    """Run a non-proxy route; an unexpected exception is logged and answered in the OpenAI error shape (500)."""
    started = False

    async def tracked(message: Any) -> None:
        nonlocal started
        started = started or message["type"] == "http.response.start"
        await send(message)

    try:
        await route(scope, receive, tracked)
    except ClientDisconnected:
        return
    except Exception as exc:  # boundary: one request must never answer plain text or take the worker down
        if _refused_by_database(exc):
            log.info("%s %s: the database refused a value: %s", scope["method"], scope["path"], exc.__cause__)
            error: SidecarError = InvalidRequest(
                "a value in the request cannot be stored or looked up (too long, a NUL character, or out of range)"
            )
        else:
            log.exception("internal error while handling %s %s", scope["method"], scope["path"])
            error = InternalError("internal error in the sidecar; see its log")
        if not started:
            await send_error(send, error)


def _refused_by_database(exc: Exception) -> bool:
    """SQLAlchemy's DataError: the database refused a client's value (PostgreSQL: longer than its column, a NUL
    character, a number out of range). Checked without importing SQLAlchemy on the request path."""
    errors = sys.modules.get("sqlalchemy.exc")
    return errors is not None and isinstance(exc, errors.DataError)


def build_metrics(runtime: Runtime) -> Any:
    """Request metrics plus state read at scrape time: traffic log counters and upstream load and health."""
    from sidecar.metrics import SidecarMetrics

    metrics = SidecarMetrics(runtime.settings, models=runtime.routes)

    def traffic_state() -> dict[tuple[str, ...], float]:
        if runtime.traffic is None:
            return {}
        return {(name,): float(value) for name, value in runtime.traffic.stats.as_dict().items()}

    def outstanding() -> dict[tuple[str, ...], float]:
        return {(route.name, d.label): float(d.outstanding) for route in runtime.routes.values() for d in route.deployments}

    def healthy() -> dict[tuple[str, ...], float]:
        now = time.monotonic()
        return {
            (route.name, d.label): 0.0 if d.cooldown_until > now else 1.0
            for route in runtime.routes.values()
            for d in route.deployments
        }

    metrics.add_state("tollgate_traffic_log", "Traffic log counters and queue depth", traffic_state, ("counter",))
    add_traffic_alerts(metrics, runtime)
    metrics.add_state("tollgate_upstream_in_flight", "Requests in flight per deployment", outstanding,
                      ("model", "deployment"))
    metrics.add_state("tollgate_upstream_up", "1 when the deployment is not cooling down after failures", healthy,
                      ("model", "deployment"))
    admission = runtime.forwarder.admission if runtime.forwarder is not None else None
    if admission is not None:
        metrics.add_state("tollgate_admission_queue_depth", "Requests waiting for a deployment slot",
                          admission.depths, ("deployment",))
        metrics.add_state("tollgate_admission_refused", "Requests refused with 503 since start, by reason",
                          admission.refusals, ("deployment", "reason"))
    return metrics


def add_traffic_alerts(metrics: Any, runtime: Runtime) -> None:
    """Gauges to alert on when storage refuses traffic rows (no labels: one series each)."""

    def read(field: str) -> Callable[[], dict[tuple[str, ...], float]]:
        def value() -> dict[tuple[str, ...], float]:
            traffic = runtime.traffic
            return {(): float(traffic.stats.as_dict().get(field, 0))} if traffic is not None else {}

        return value

    def full() -> dict[tuple[str, ...], float]:
        traffic = runtime.traffic
        return {(): 0.0 if traffic is None or traffic.admits() else 1.0}

    metrics.add_state("tollgate_traffic_unwritable_rows", "Traffic rows held in memory: neither the database nor "
                      "the spool takes them", read("unwritable"), ())
    metrics.add_state("tollgate_traffic_log_full", "1 while the traffic log's memory buffer is full "
                      "(traffic.when_full applies)", full, ())
    metrics.add_state("tollgate_traffic_shed_rows", "Requests served but not logged since start "
                      "(traffic.when_full: shed)", read("shed"), ())
    metrics.add_state("tollgate_traffic_refused_requests", "Requests refused with 503 traffic_log_full since start",
                      read("refused"), ())


def create_app(settings: Settings, **kwargs: Any) -> SidecarApp:
    return SidecarApp(settings, **kwargs)
