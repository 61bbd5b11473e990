"""Sidecar spans: GenAI attribute names, parent from `traceparent`, nothing without an exporter."""

from __future__ import annotations

import httpx
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sidecar.testing import ThreadedSidecar
from tests.sidecar.conftest import EVERY_SSE_STYLE, TrafficCollector, sidecar_settings
from tests.sidecar.test_proxy import CHAT, wait_record

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


def start(tmp_path, fake, exporter):
    settings = sidecar_settings(tmp_path, {"fake-model": {"deployments": [{"base_url": fake.url}]}})
    collector = TrafficCollector()
    proxy = ThreadedSidecar(settings, traffic_factory=lambda _s: collector, span_exporter=exporter).start()
    return proxy, collector


@EVERY_SSE_STYLE
def test_spans_carry_genai_attributes_and_the_callers_parent(tmp_path, fake):
    exporter = InMemorySpanExporter()
    proxy, collector = start(tmp_path, fake, exporter)
    try:
        headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01", "X-Tollgate-Prompt": "booking_extract@v1"}
        plain = httpx.post(proxy.url + "/chat/completions", json=CHAT, headers=headers)
        with httpx.stream("POST", proxy.url + "/chat/completions", json={**CHAT, "stream": True}) as stream:
            stream.read()
        bad = httpx.post(proxy.url + "/chat/completions", json={**CHAT, "model": "nope"})
        for response in (plain, stream, bad):
            wait_record(collector, response.headers["x-request-id"])
    finally:
        proxy.stop()
    spans = {span.attributes["tollgate.request_id"]: span for span in exporter.get_finished_spans()}
    assert len(spans) == 3
    usage = plain.json()["usage"]
    first = spans[plain.headers["x-request-id"]]
    assert first.name == "chat fake-model"
    assert first.attributes["gen_ai.operation.name"] == "chat"
    assert first.attributes["gen_ai.provider.name"] == "openai"
    assert first.attributes["gen_ai.request.model"] == "fake-model"
    assert first.attributes["gen_ai.response.model"] == "fake-model"
    assert first.attributes["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
    assert first.attributes["gen_ai.usage.output_tokens"] == usage["completion_tokens"]
    assert tuple(first.attributes["gen_ai.response.finish_reasons"]) == ("stop",)
    assert first.attributes["tollgate.prompt.name"] == "booking_extract"
    assert format(first.context.trace_id, "032x") == TRACE_ID
    assert format(first.parent.span_id, "016x") == PARENT_ID
    streamed = spans[stream.headers["x-request-id"]]
    assert streamed.attributes["gen_ai.response.time_to_first_chunk"] > 0
    assert streamed.attributes["gen_ai.usage.output_tokens"] == usage["completion_tokens"]
    assert tuple(streamed.attributes["gen_ai.response.finish_reasons"]) == ("stop",)
    assert streamed.parent is None
    failed = spans[bad.headers["x-request-id"]]
    assert failed.attributes["error.type"] == "client_error"
    assert failed.status.status_code.name == "ERROR"
    assert streamed.end_time - streamed.start_time > 0


def test_no_exporter_means_no_tracer(sidecar):
    proxy, _ = sidecar
    assert proxy.app.runtime is not None and proxy.app.runtime.tracer is None
