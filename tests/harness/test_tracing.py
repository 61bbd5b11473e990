"""Harness case spans are parents of the sidecar's spans for the same call (one trace per run)."""

from __future__ import annotations

import httpx
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from core.settings import TelemetrySettings
from harness.tracing import HarnessTracer, create_harness_tracer
from sidecar.fake_upstream import FakeBehaviour, start_fake_upstream_thread
from sidecar.testing import ThreadedSidecar
from tests.sidecar.conftest import TrafficCollector, sidecar_settings


def test_no_endpoint_means_no_tracer(monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    assert create_harness_tracer(TelemetrySettings(), "s1") is None


def test_case_span_is_the_parent_of_the_sidecar_span(tmp_path):
    harness_spans = InMemorySpanExporter()
    sidecar_spans = InMemorySpanExporter()
    tracer = create_harness_tracer(TelemetrySettings(), "session-1", exporter=harness_spans)
    assert tracer is not None
    with start_fake_upstream_thread(FakeBehaviour()) as fake:
        settings = sidecar_settings(tmp_path, {"fake-model": {"deployments": [{"base_url": fake.url}]}})
        collector = TrafficCollector()
        with ThreadedSidecar(settings, traffic_factory=lambda _s: collector, span_exporter=sidecar_spans) as proxy:
            span, traceparent = tracer.start_case("booking", "b01", 0, "booking_extract", "abc123")
            assert traceparent is not None
            response = httpx.post(proxy.url + "/chat/completions", headers={"traceparent": traceparent},
                                  json={"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]})
            assert response.status_code == 200
            HarnessTracer.end_case_span(span, True, None)
    tracer.close()
    case, run = sorted(harness_spans.get_finished_spans(), key=lambda s: s.name)
    assert (case.name, run.name) == ("case booking/b01", "tollgate run")
    assert case.parent.span_id == run.context.span_id
    (call,) = sidecar_spans.get_finished_spans()
    assert call.context.trace_id == case.context.trace_id
    assert call.parent.span_id == case.context.span_id
    assert case.attributes["tollgate.passed"] is True
