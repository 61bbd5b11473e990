"""OpenTelemetry spans of a harness session: one per run and one per case, linked to the sidecar's spans.

Each case's model call carries a W3C `traceparent` header for its case span, so the sidecar's span of that
call (and the upstream's, if it traces) lands under the case in the same trace. Without an OTLP endpoint
configured nothing is created.
"""

from __future__ import annotations

from typing import Any

from core.settings import TelemetrySettings
from core.telemetry import create_tracer_provider, traceparent_of


class HarnessTracer:
    """A run span opened on the first case, case spans under it; both ended by the session."""

    def __init__(self, provider: Any, session_id: str) -> None:
        from opentelemetry import trace

        self._trace = trace
        self._provider = provider
        self._tracer = provider.get_tracer("tollgate.harness")
        self._session_id = session_id
        self._run: Any = None

    def start_case(self, suite: str, case_id: str, repeat: int, prompt: str, version: str) -> tuple[Any, str | None]:
        """A case span and the `traceparent` value to send with its model call."""
        if self._run is None:
            self._run = self._tracer.start_span("tollgate run", attributes={"tollgate.session_id": self._session_id})
        span = self._tracer.start_span(
            f"case {suite}/{case_id}",
            context=self._trace.set_span_in_context(self._run),
            attributes={
                "tollgate.suite": suite,
                "tollgate.case_id": case_id,
                "tollgate.repeat": repeat,
                "tollgate.prompt.name": prompt,
                "tollgate.prompt.version": version,
            },
        )
        return span, traceparent_of(span)

    @staticmethod
    def end_case_span(span: Any, passed: bool | None, error: str | None) -> None:
        from opentelemetry.trace import Status, StatusCode

        if passed is not None:
            span.set_attribute("tollgate.passed", passed)
        if error:
            span.set_attribute("error.type", "case_error")
            span.set_status(Status(StatusCode.ERROR, error[:200]))
        span.end()

    def close(self) -> None:
        if self._run is not None:
            self._run.end()
        self._provider.shutdown()


def create_harness_tracer(settings: TelemetrySettings, session_id: str, exporter: Any = None) -> HarnessTracer | None:
    provider = create_tracer_provider(settings, "harness", exporter=exporter)
    return None if provider is None else HarnessTracer(provider, session_id)
