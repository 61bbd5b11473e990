"""The request pipeline: stages answer, refuse, rewrite and filter, over loopback against the fake upstream."""

from __future__ import annotations

import httpx
import orjson

from sidecar.errors import GuardrailBlocked
from sidecar.pipeline import BaseStage, Exchange, Reply, StreamBlocked
from tests.sidecar.conftest import EVERY_SSE_STYLE
from tests.sidecar.test_proxy import CHAT, sse_events, wait_record

MODELS_KEY = "fake-model"


def models(fake) -> dict:
    return {MODELS_KEY: {"deployments": [{"base_url": fake.url}]}}


class Recorder(BaseStage):
    """Notes which steps ran, in which order, into a shared list."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    async def on_request(self, exchange: Exchange) -> Reply | None:
        self.log.append(f"{self.name}.request")
        return None

    async def on_reply(self, exchange: Exchange, reply: Reply) -> Reply:
        self.log.append(f"{self.name}.reply")
        return reply

    def on_done(self, exchange: Exchange) -> None:
        self.log.append(f"{self.name}.done:{exchange.record.status}")


class Answering(BaseStage):
    name = "answer"

    async def on_request(self, exchange: Exchange) -> Reply | None:
        exchange.record.cache_status = "hit"
        exchange.response_headers.append((b"x-tollgate-cache", b"hit"))
        document = {"id": "cached", "object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "from a stage"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
        return Reply(200, orjson.dumps(document))


def test_stages_run_in_order_and_replies_in_reverse(make_sidecar, fake):
    log: list[str] = []
    proxy, collector = make_sidecar(models(fake), stages=lambda _rt: [Recorder("a", log), Recorder("b", log)])
    response = httpx.post(proxy.url + "/chat/completions", json=CHAT)
    assert response.status_code == 200
    wait_record(collector, response.headers["x-request-id"])
    assert log == ["a.request", "b.request", "b.reply", "a.reply", "a.done:200", "b.done:200"]


def test_a_stage_can_answer_without_calling_the_upstream(make_sidecar, fake):
    log: list[str] = []
    before = fake.stats()["requests_total"]
    proxy, collector = make_sidecar(
        models(fake), stages=lambda _rt: [Recorder("a", log), Answering(), Recorder("never", log)]
    )
    response = httpx.post(proxy.url + "/chat/completions", json=CHAT)
    assert response.status_code == 200
    assert response.headers["x-tollgate-cache"] == "hit"
    assert response.json()["choices"][0]["message"]["content"] == "from a stage"
    record = wait_record(collector, response.headers["x-request-id"])
    assert record.cache_status == "hit" and record.served_model is None
    assert "never.request" not in log and log[:2] == ["a.request", "a.reply"]
    assert fake.stats()["requests_total"] == before


class Refusing(BaseStage):
    name = "refuse"

    async def on_request(self, exchange: Exchange) -> Reply | None:
        raise GuardrailBlocked("no talking about friends", code="off_topic")


def test_a_refusing_stage_answers_in_the_openai_error_shape(make_sidecar, fake):
    log: list[str] = []
    proxy, collector = make_sidecar(models(fake), stages=lambda _rt: [Recorder("a", log), Refusing()])
    response = httpx.post(proxy.url + "/chat/completions", json=CHAT)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "off_topic"
    record = wait_record(collector, response.headers["x-request-id"])
    assert record.error_class == "guardrail" and record.status == 400
    assert log == ["a.request", "a.done:400"]


class Retrying(BaseStage):
    """Rewrites the request's model on the way in, and asks again once on the way out."""

    name = "retry"

    async def on_request(self, exchange: Exchange) -> Reply | None:
        exchange.payload = {**exchange.payload, "max_tokens": 3}
        exchange.body = None
        return None

    async def on_reply(self, exchange: Exchange, reply: Reply) -> Reply:
        assert exchange.resend is not None
        again = await exchange.resend({**exchange.payload, "messages": [{"role": "user", "content": "again"}]})
        document = again.document()
        document["retried"] = True
        again.replace_document(document)
        return again


def test_a_stage_can_rewrite_the_request_and_resend(make_sidecar, fake):
    proxy, collector = make_sidecar(models(fake), stages=lambda _rt: [Retrying()])
    response = httpx.post(proxy.url + "/chat/completions", json=CHAT)
    assert response.status_code == 200 and response.json()["retried"] is True
    record = wait_record(collector, response.headers["x-request-id"])
    assert record.attempts == 2
    assert orjson.loads(record.response_body)["retried"] is True


class Upper:
    def feed(self, events: bytes) -> bytes:
        return events.replace(b'"content":"', b'"content":"X')


class Blocker:
    def __init__(self) -> None:
        self.seen = 0

    def feed(self, events: bytes) -> bytes:
        self.seen += events.count(b"data: {")
        if self.seen >= 2:
            raise StreamBlocked("policy violation in the answer", code="policy")
        return events


class Filtering(BaseStage):
    name = "filter"

    def __init__(self, make) -> None:
        self.make = make

    def stream_filter(self, exchange: Exchange):
        return self.make()


@EVERY_SSE_STYLE
def test_stream_filters_rewrite_events(make_sidecar, fake):
    proxy, _ = make_sidecar(models(fake), stages=lambda _rt: [Filtering(Upper)])
    with httpx.stream("POST", proxy.url + "/chat/completions", json={**CHAT, "stream": True}) as response:
        lines = list(response.iter_lines())
    events = sse_events(lines)
    assert events[-1] == "[DONE]"
    contents = [orjson.loads(e)["choices"][0]["delta"].get("content") for e in events[:-1]
                if orjson.loads(e).get("choices")]
    assert all(c.startswith("X") for c in contents if c)


@EVERY_SSE_STYLE
def test_a_blocked_stream_ends_with_an_error_event(make_sidecar, fake):
    proxy, collector = make_sidecar(models(fake), stages=lambda _rt: [Filtering(Blocker)])
    with httpx.stream("POST", proxy.url + "/chat/completions", json={**CHAT, "stream": True}) as response:
        lines = list(response.iter_lines())
        request_id = response.headers["x-request-id"]
    events = sse_events(lines)
    assert "[DONE]" not in events
    assert orjson.loads(events[-1])["error"]["code"] == "policy"
    record = wait_record(collector, request_id)
    assert record.error_class == "guardrail"
