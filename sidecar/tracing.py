"""OpenTelemetry spans for sidecar requests, named and attributed per the GenAI semantic conventions.

A span is built once the request has finished, from the timings already on its traffic record, so tracing adds
nothing while the request is in flight; without an exporter configured the sidecar creates no tracer at all.
A W3C `traceparent` header from the caller (the harness sends one per case) makes the span its child.
"""

from __future__ import annotations

from typing import Any

from core.telemetry import parent_context
from sidecar.traffic.record import RawTraffic

OPERATIONS = {"chat.completions": "chat", "completions": "text_completion", "embeddings": "embeddings"}


class RequestTracer:
    """Turns finished requests into spans on the given tracer provider."""

    def __init__(self, provider: Any) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode

        self._provider = provider
        self._tracer = provider.get_tracer("tollgate.sidecar")
        self._kind = SpanKind.CLIENT
        self._error_status = Status
        self._error_code = StatusCode.ERROR

    def record(self, record: RawTraffic, traceparent: str | None, tokens_in: int | None, tokens_out: int | None,
               finish_reasons: list[str] | None) -> None:
        operation = OPERATIONS.get(record.endpoint, record.endpoint)
        start_ns = int(record.started_at * 1e9)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": _provider_name(record.provider),
            "gen_ai.request.model": record.requested_model or "",
            "http.response.status_code": record.status,
            "tollgate.request_id": record.request_id,
            "tollgate.attempts": record.attempts,
        }
        optional = {
            "gen_ai.response.model": record.served_model,
            "gen_ai.usage.input_tokens": tokens_in,
            "gen_ai.usage.output_tokens": tokens_out,
            "gen_ai.response.finish_reasons": finish_reasons or None,
            "gen_ai.response.time_to_first_chunk": None if record.ttft_ms is None else record.ttft_ms / 1000.0,
            "tollgate.deployment": record.deployment,
            "tollgate.user.segment": record.segment,
            "tollgate.prompt.name": record.prompt_name,
            "tollgate.prompt.version": record.prompt_version,
            "tollgate.feature": record.feature,
            "error.type": record.error_class,
        }
        attributes.update({key: value for key, value in optional.items() if value is not None})
        span = self._tracer.start_span(
            f"{operation} {record.requested_model or ''}".strip(),
            context=parent_context(traceparent),
            kind=self._kind,
            start_time=start_ns,
            attributes=attributes,
        )
        if record.error_class is not None:
            span.set_status(self._error_status(self._error_code, record.error_message or record.error_class))
        span.end(end_time=start_ns + int(record.latency_ms * 1e6))

    def shutdown(self) -> None:
        self._provider.shutdown()


def _provider_name(provider: str | None) -> str:
    # Deployments speak the OpenAI protocol or go through litellm; the GenAI name for the former is "openai".
    return "openai" if provider in (None, "openai") else provider
