"""OpenTelemetry set-up shared by the sidecar and the harness: a tracer provider only when traces have somewhere
to go, so an unconfigured deployment pays nothing. Span attribute names follow the OpenTelemetry GenAI
semantic conventions (`gen_ai.*`)."""

from __future__ import annotations

from typing import Any

from core.settings import TelemetrySettings

TRACEPARENT = "traceparent"


def create_tracer_provider(settings: TelemetrySettings, component: str, exporter: Any = None) -> Any | None:
    """A batching tracer provider exporting over OTLP/HTTP (or to `exporter`, for tests); None when off."""
    endpoint = settings.otlp_endpoint
    if exporter is None and endpoint is None:
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    resource = Resource.create({"service.name": f"{settings.service_name}-{component}"})
    provider = TracerProvider(resource=resource)
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


def parent_context(traceparent: str | None) -> Any:
    """The remote parent described by a W3C `traceparent` header (None when absent or malformed)."""
    if not traceparent:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract({TRACEPARENT: traceparent})


def traceparent_of(span: Any) -> str | None:
    """The `traceparent` header value that makes a callee's spans children of `span`."""
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get(TRACEPARENT)
