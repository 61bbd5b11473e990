"""The fake upstream over real loopback HTTP: answers, streams, timing, faults, admin routes, runners, CLI."""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import math
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
import pytest_asyncio

from core.sse import parse_events
from sidecar.commands.fake_upstream import add_arguments, build_behaviour
from sidecar.fake_upstream import (
    FakeBehaviour,
    FakeUpstream,
    FakeUpstreamError,
    Fault,
    SseStyle,
    embed,
    parse_fault_spec,
    start_fake_upstream_thread,
)
from tests.waiting import wait_until_async

CHAT = {
    "model": "gpt-test",
    "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello big world"}],
}


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(FakeBehaviour(output_tokens=5)) as server:
        yield server


@pytest_asyncio.fixture
async def client(fake: FakeUpstream) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fake.base_url, timeout=10) as http:
        yield http


def events_of(raw: bytes) -> list[bytes]:
    """The data payloads of an SSE body, checking every event is exactly `data: ...` + blank line."""
    assert raw.endswith(b"\n\n")
    blocks = raw[:-2].split(b"\n\n")
    assert all(block.startswith(b"data: ") and b"\n" not in block for block in blocks)
    return [block[len(b"data: ") :] for block in blocks]


async def timed_events(
    client: httpx.AsyncClient, path: str, body: dict
) -> tuple[float, list[tuple[float, bytes]]]:
    """Send a streaming request; return its start time and each event's payload with its arrival time."""
    start = time.perf_counter()
    received: list[tuple[float, bytes]] = []
    async with client.stream("POST", path, json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line:
                assert line.startswith("data: ")
                received.append((time.perf_counter(), line[len("data: ") :].encode()))
    return start, received


# --- answers ---------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_chat_answer_echoes_the_last_user_message_with_usage(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    data = response.json()
    assert data["id"].startswith("chatcmpl-")
    assert data["object"] == "chat.completion"
    assert isinstance(data["created"], int) and data["created"] > 1_600_000_000
    assert data["model"] == "gpt-test"
    [choice] = data["choices"]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == "echo: hello big world hello"
    assert choice["finish_reason"] == "stop"
    # prompt tokens: "be brief" (2) + "hello big world" (3); completion: 5 whitespace words.
    assert data["usage"] == {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}


@pytest.mark.asyncio
async def test_answers_are_deterministic_and_follow_the_request(client: httpx.AsyncClient) -> None:
    first = (await client.post("/v1/chat/completions", json=CHAT)).json()
    again = (await client.post("/v1/chat/completions", json=CHAT)).json()
    other = (await client.post("/v1/chat/completions", json={**CHAT, "model": "other"})).json()
    assert first["choices"] == again["choices"] and first["id"] == again["id"]
    assert other["model"] == "other" and other["id"] != first["id"]


@pytest.mark.asyncio
async def test_max_tokens_truncates_with_finish_reason_length(client: httpx.AsyncClient) -> None:
    data = (await client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 2})).json()
    assert data["choices"][0]["message"]["content"] == "echo: hello"
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 2


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "response_format",
    [
        {"type": "json_object"},
        {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
    ],
)
async def test_json_response_format_returns_a_json_object(client: httpx.AsyncClient, response_format) -> None:
    data = (
        await client.post("/v1/chat/completions", json={**CHAT, "response_format": response_format})
    ).json()
    content = data["choices"][0]["message"]["content"]
    assert orjson.loads(content) == {"echo": "hello big world hello big"}
    assert data["usage"]["completion_tokens"] == len(content.split()) == 5


@pytest.mark.asyncio
async def test_fixed_reply_replaces_the_echo(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    fake.set_behaviour(reply="Paris is the capital")
    data = (await client.post("/v1/chat/completions", json=CHAT)).json()
    assert data["choices"][0]["message"]["content"] == "Paris is the capital"
    assert data["usage"]["completion_tokens"] == 4


@pytest.mark.asyncio
async def test_legacy_completions(client: httpx.AsyncClient) -> None:
    data = (await client.post("/v1/completions", json={"model": "m", "prompt": "one two"})).json()
    assert data["object"] == "text_completion" and data["model"] == "m"
    assert data["choices"][0]["text"] == "echo: one two one two"
    assert data["usage"] == {"prompt_tokens": 2, "completion_tokens": 5, "total_tokens": 7}
    raw = (
        await client.post("/v1/completions", json={"model": "m", "prompt": "one two", "stream": True})
    ).content
    payloads = events_of(raw)
    assert payloads[-1] == b"[DONE]"
    chunks = [orjson.loads(p) for p in payloads[:-1]]
    assert "".join(c["choices"][0]["text"] for c in chunks) == "echo: one two one two"
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * 5 + ["stop"]


@pytest.mark.asyncio
async def test_bad_requests_get_openai_shaped_400s(client: httpx.AsyncClient) -> None:
    cases = [
        (b"{not json", None),
        (orjson.dumps({"messages": CHAT["messages"]}), "model"),
        (orjson.dumps({"model": "m", "messages": []}), "messages"),
    ]
    for body, param in cases:
        response = await client.post("/v1/chat/completions", content=body)
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and error["param"] == param and error["message"]


@pytest.mark.asyncio
async def test_models_and_health(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    fake.set_behaviour(models=("a", "b"))
    data = (await client.get("/v1/models")).json()
    assert data["object"] == "list" and [m["id"] for m in data["data"]] == ["a", "b"]
    health = await client.get("/health")
    assert health.status_code == 200 and health.json() == {"status": "ok"}


# --- streams ---------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_stream_sends_one_chunk_per_token_without_usage(client: httpx.AsyncClient) -> None:
    raw = (await client.post("/v1/chat/completions", json={**CHAT, "stream": True})).content
    payloads = events_of(raw)
    assert payloads[-1] == b"[DONE]"
    chunks = [orjson.loads(p) for p in payloads[:-1]]
    assert len(chunks) == 1 + 5 + 1  # role, five tokens, finish
    assert len({c["id"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "gpt-test" for c in chunks)
    assert all("usage" not in c for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    tokens = [c["choices"][0]["delta"]["content"] for c in chunks[1:-1]]
    assert tokens == ["echo:", " hello", " big", " world", " hello"]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * 6 + ["stop"]
    assert chunks[-1]["choices"][0]["delta"] == {}


@pytest.mark.asyncio
async def test_stream_with_include_usage_ends_with_a_usage_chunk(client: httpx.AsyncClient) -> None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    payloads = events_of((await client.post("/v1/chat/completions", json=body)).content)
    assert payloads[-1] == b"[DONE]"
    chunks = [orjson.loads(p) for p in payloads[:-1]]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.asyncio
async def test_stream_timing_follows_ttft_and_inter_token_delays(
    fake: FakeUpstream, client: httpx.AsyncClient
) -> None:
    ttft, gap, tokens = 0.08, 0.03, 5
    fake.set_behaviour(ttft_s=ttft, inter_token_s=gap, output_tokens=tokens)
    start, received = await timed_events(client, "/v1/chat/completions", {**CHAT, "stream": True})
    # Order and shape only: how long the delays measure from the client depends on the machine's load
    # (benchmarks/ prints those figures); every token still arrives as its own event, in order.
    times = [at for at, _ in received]
    assert start <= times[0] and all(later >= earlier for earlier, later in itertools.pairwise(times))
    contents = [orjson.loads(data)["choices"][0]["delta"].get("content") for _, data in received[1 : 1 + tokens]]
    assert len(contents) == tokens and all(contents)


@pytest.mark.asyncio
async def test_non_stream_waits_for_the_whole_generation(
    fake: FakeUpstream, client: httpx.AsyncClient
) -> None:
    fake.set_behaviour(ttft_s=0.05, inter_token_s=0.02, output_tokens=4)
    response = await client.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 200
    # One answer holding every generated token: nothing was sent before the last one was produced.
    assert response.json()["usage"]["completion_tokens"] == 4


# --- embeddings ------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_embeddings_are_deterministic_unit_vectors(client: httpx.AsyncClient) -> None:
    body = {"model": "emb", "input": ["alpha beta", "gamma", "alpha beta"]}
    first = (await client.post("/v1/embeddings", json=body)).json()
    again = (await client.post("/v1/embeddings", json=body)).json()
    vectors = [item["embedding"] for item in first["data"]]
    assert first == again
    assert first["model"] == "emb" and first["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    assert [item["index"] for item in first["data"]] == [0, 1, 2]
    assert all(len(v) == 8 for v in vectors)
    assert all(math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-9) for v in vectors)
    assert vectors[0] == vectors[2] != vectors[1]
    assert vectors[1] == embed("gamma", 8)


@pytest.mark.asyncio
async def test_embeddings_dimensions_and_base64(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    fake.set_behaviour(embedding_dim=16)
    plain = (await client.post("/v1/embeddings", json={"model": "e", "input": "x"})).json()
    assert len(plain["data"][0]["embedding"]) == 16
    asked = (await client.post("/v1/embeddings", json={"model": "e", "input": "x", "dimensions": 4})).json()
    assert len(asked["data"][0]["embedding"]) == 4
    encoded = (
        await client.post("/v1/embeddings", json={"model": "e", "input": "x", "encoding_format": "base64"})
    ).json()
    decoded = struct.unpack("<16f", base64.b64decode(encoded["data"][0]["embedding"]))
    assert decoded == pytest.approx(plain["data"][0]["embedding"], abs=1e-6)


# --- faults ----------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_status_fault_answers_with_an_openai_error(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", json=CHAT, headers={"X-Fake-Fault": "status:503"})
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["type"] == "server_error" and "503" in error["message"]
    assert "retry-after" not in response.headers
    limited = await client.post(
        "/v1/chat/completions",
        json=CHAT,
        headers={"X-Fake-Fault": '{"fault": "status", "status": 429, "retry_after_s": 7}'},
    )
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "7"
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"


@pytest.mark.asyncio
async def test_reset_fault_drops_the_connection_without_a_response(client: httpx.AsyncClient) -> None:
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        await client.post("/v1/chat/completions", json=CHAT, headers={"X-Fake-Fault": "reset"})
    assert (await client.post("/v1/chat/completions", json=CHAT)).status_code == 200


@pytest.mark.asyncio
async def test_cut_fault_ends_a_stream_after_k_events(client: httpx.AsyncClient) -> None:
    received: list[str] = []
    with pytest.raises(httpx.RemoteProtocolError):
        async with client.stream(
            "POST", "/v1/chat/completions", json={**CHAT, "stream": True}, headers={"X-Fake-Fault": "cut:3"}
        ) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line:
                    received.append(line)
    assert len(received) == 3
    assert [orjson.loads(line[6:])["choices"][0]["delta"].get("content") for line in received] == [
        "",
        "echo:",
        " hello",
    ]


@pytest.mark.asyncio
async def test_cut_fault_truncates_a_non_stream_body(client: httpx.AsyncClient) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post("/v1/chat/completions", json=CHAT, headers={"X-Fake-Fault": "cut"})


@pytest.mark.asyncio
async def test_hang_fault_never_answers_until_the_client_gives_up(
    fake: FakeUpstream, client: httpx.AsyncClient
) -> None:
    with pytest.raises(httpx.ReadTimeout):
        await client.post("/v1/chat/completions", json=CHAT, headers={"X-Fake-Fault": "hang"}, timeout=0.3)
    assert (await client.post("/v1/chat/completions", json=CHAT)).status_code == 200
    assert fake.stats()["faults"] == {"hang": 1}


@pytest.mark.asyncio
async def test_closing_the_server_releases_hanging_requests() -> None:
    async with httpx.AsyncClient(timeout=None) as http:
        server = await FakeUpstream(FakeBehaviour(fault=Fault.HANG)).start()
        pending = asyncio.create_task(http.post(f"{server.url}/chat/completions", json=CHAT))
        await wait_until_async(lambda: server.stats()["requests_total"], what="the hanging request")
        await asyncio.wait_for(server.aclose(), timeout=10)
        with pytest.raises(httpx.TransportError):
            await asyncio.wait_for(pending, timeout=10)


@pytest.mark.asyncio
async def test_garbage_fault_answers_200_with_a_body_that_is_not_json(client: httpx.AsyncClient) -> None:
    plain = await client.post("/v1/chat/completions", json=CHAT, headers={"X-Fake-Fault": "garbage"})
    assert plain.status_code == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(plain.content)
    streamed = await client.post(
        "/v1/chat/completions", json={**CHAT, "stream": True}, headers={"X-Fake-Fault": "garbage"}
    )
    assert streamed.status_code == 200
    assert streamed.headers["content-type"].startswith("text/event-stream")
    first = events_of(streamed.content)[0]
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(first)


@pytest.mark.asyncio
async def test_slow_first_byte_delays_the_headers_then_answers(
    fake: FakeUpstream, client: httpx.AsyncClient
) -> None:
    request = asyncio.create_task(
        client.post("/v1/chat/completions", json=CHAT, headers={"X-Fake-Fault": "slow_first_byte:0.2"})
    )
    # The fake runs on this event loop: our 10 ms poll always fires before its 0.2 s delay ends, so
    # "received, not answered" is an ordering of events, not a race against the clock.
    await wait_until_async(lambda: fake.stats()["faults"].get("slow_first_byte"), what="the request")
    assert not request.done()
    response = await request
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "echo: hello big world hello"


@pytest.mark.asyncio
async def test_invalid_fault_header_is_a_400_naming_the_problem(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", json=CHAT, headers={"X-Fake-Fault": "explode"})
    assert response.status_code == 400
    assert "unknown fault 'explode'" in response.json()["error"]["message"]


# --- run-time control ------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_script_is_consumed_in_order_then_defaults_return(client: httpx.AsyncClient) -> None:
    script = [{"fault": "status", "status": 503}, {"fault": "none"}, {"fault": "status", "status": 429}]
    queued = await client.post("/_fake/script", json=script)
    assert queued.json() == {"script_pending": 3}
    statuses = [(await client.post("/v1/chat/completions", json=CHAT)).status_code for _ in range(4)]
    assert statuses == [503, 200, 429, 200]
    assert (await client.get("/_fake/stats")).json()["script_pending"] == 0


@pytest.mark.asyncio
async def test_header_takes_precedence_and_leaves_the_script_queued(client: httpx.AsyncClient) -> None:
    await client.post("/_fake/script", json={"script": [{"fault": "status", "status": 500}]})
    overridden = await client.post("/v1/chat/completions", json=CHAT, headers={"X-Fake-Fault": "none"})
    assert overridden.status_code == 200
    assert (await client.post("/v1/chat/completions", json=CHAT)).status_code == 500


@pytest.mark.asyncio
async def test_behaviour_patch_validation_and_reset(client: httpx.AsyncClient) -> None:
    patched = await client.post("/_fake/behaviour", json={"output_tokens": 2})
    assert patched.status_code == 200 and patched.json()["output_tokens"] == 2
    data = (await client.post("/v1/chat/completions", json=CHAT)).json()
    assert data["choices"][0]["message"]["content"] == "echo: hello"
    bad = await client.post("/_fake/behaviour", json={"output_tokens": -1, "typo": 1})
    assert bad.status_code == 400 and "typo" in bad.json()["error"]["message"]
    bad_script = await client.post("/_fake/script", json=[{"fault": "nope"}])
    assert bad_script.status_code == 400 and "fault" in bad_script.json()["error"]["message"]
    await client.post("/_fake/script", json=[{"fault": "reset"}])
    reset = await client.post("/_fake/reset")
    assert reset.json()["output_tokens"] == 5
    stats = (await client.get("/_fake/stats")).json()
    assert stats["requests_total"] == 0 and stats["script_pending"] == 0
    data = (await client.post("/v1/chat/completions", json=CHAT)).json()
    assert data["usage"]["completion_tokens"] == 5


@pytest.mark.asyncio
async def test_stats_show_what_was_received() -> None:
    async with FakeUpstream(history=2) as fake, httpx.AsyncClient(base_url=fake.base_url) as http:
        await http.get("/health")
        await http.post("/v1/embeddings", json={"model": "e", "input": "x"})
        await http.post(
            "/v1/chat/completions",
            json={**CHAT, "stream": True, "stream_options": {"include_usage": True}},
            headers={"Authorization": "Bearer sk-upstream"},
        )
        await http.post("/v1/chat/completions", json=CHAT, headers={"X-Fake-Fault": "status:502"})
        stats = (await http.get("/_fake/stats")).json()
    assert stats["by_path"] == {"/health": 1, "/v1/embeddings": 1, "/v1/chat/completions": 2}
    assert stats["requests_total"] == 4
    assert stats["faults"] == {"status": 1}
    assert len(stats["recent"]) == 2  # bounded by history; health checks are counted, not kept
    streamed, failed = stats["recent"]
    assert streamed["method"] == "POST" and streamed["path"] == "/v1/chat/completions"
    assert streamed["headers"]["authorization"] == "Bearer sk-upstream"
    assert streamed["body"]["stream_options"] == {"include_usage": True}
    assert streamed["fault"] == "none" and failed["fault"] == "status"
    assert failed["headers"]["x-fake-fault"] == "status:502"


# --- behaviour values ------------------------------------------------------------------------------------


def test_fault_specs_become_patches() -> None:
    assert parse_fault_spec("reset") == {"fault": "reset"}
    assert parse_fault_spec("status:503") == {"fault": "status", "status": "503"}
    assert parse_fault_spec("cut:3") == {"fault": "cut", "cut_after": "3"}
    assert parse_fault_spec('{"fault": "hang"}') == {"fault": "hang"}
    behaviour = FakeBehaviour().patched(parse_fault_spec("status:503"))
    assert behaviour.fault is Fault.STATUS and behaviour.status == 503
    for bad in ("explode", "hang:3", "{not json", "[1]"):
        with pytest.raises(FakeUpstreamError):
            parse_fault_spec(bad)
    for patch in ({"ttft_s": -1}, {"status": 99}, {"colour": "red"}):
        with pytest.raises(FakeUpstreamError):
            FakeBehaviour().patched(patch)


# --- runners ---------------------------------------------------------------------------------------------


def test_thread_runner_serves_sync_callers() -> None:
    with start_fake_upstream_thread(FakeBehaviour(output_tokens=3)) as fake:
        assert fake.url == f"http://127.0.0.1:{fake.port}/v1"
        with httpx.Client(base_url=fake.url) as http:
            assert (
                http.post("/chat/completions", json=CHAT).json()["choices"][0]["message"]["content"]
                == "echo: hello big"
            )
            fake.script({"fault": "status", "status": 418})
            assert http.post("/chat/completions", json=CHAT).status_code == 418
            fake.set_behaviour(output_tokens=1)
            assert http.post("/chat/completions", json=CHAT).json()["usage"]["completion_tokens"] == 1
            assert fake.stats()["by_path"] == {"/v1/chat/completions": 3}
            fake.reset()
            assert fake.stats()["requests_total"] == 0
        url = fake.url
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"{url}/chat/completions", json=CHAT)
    fake.stop()  # a second stop is harmless


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "core.cli", "fake-upstream"],
        [sys.executable, "-m", "sidecar.fake_upstream"],
    ],
)
def test_command_prints_its_url_and_serves(command: list[str]) -> None:
    process = subprocess.Popen(
        [*command, "--port", "0", "--output-tokens", "2", "--model", "m1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        data = httpx.post(f"{url}/chat/completions", json=CHAT, timeout=10).json()
        assert data["choices"][0]["message"]["content"] == "echo: hello"
        assert httpx.get(f"{url}/models", timeout=10).json()["data"][0]["id"] == "m1"
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr


def test_command_rejects_a_bad_fault_in_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "core.cli", "fake-upstream", "--fault", "explode"],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    expected = (
        "tollgate fake-upstream: error: unknown fault 'explode' "
        "(choose from none, status, reset, cut, hang, garbage, slow_first_byte)"
    )
    assert result.stderr.strip().splitlines() == [expected]


@pytest.mark.asyncio
@pytest.mark.parametrize("style", [style.value for style in SseStyle])
async def test_every_sse_style_carries_the_same_events(client: httpx.AsyncClient, style: str) -> None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    canonical = await client.post("/v1/chat/completions", json=body)
    framed = await client.post("/v1/chat/completions", json=body, headers={"X-Fake-Fault": f'{{"sse_style": "{style}"}}'})
    expected = events_of(canonical.content)

    def comparable(data: bytes) -> object:
        return data if data == b"[DONE]" else {**orjson.loads(data), "created": None}

    assert [comparable(e.data) for e in parse_events([framed.content])] == [comparable(d) for d in expected]
    if style != "canonical" and style != "tiny-chunks":
        assert framed.content != canonical.content


def test_the_sse_style_is_a_command_line_option() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert build_behaviour(parser.parse_args(["--sse-style", "crlf"])).sse_style is SseStyle.CRLF
    assert build_behaviour(parser.parse_args([])).sse_style is SseStyle.CANONICAL
    with pytest.raises(SystemExit):
        parser.parse_args(["--sse-style", "telegraph"])
