"""A scripted OpenAI-compatible judge over loopback HTTP, and a judge runtime on a test database."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

from core.config.judges import JudgeSettings
from core.database import open_database
from harness.judges.runtime import JudgeRuntime, close_runtime, use_runtime

Reply = str | int | float | tuple[int, str] | None
Script = Callable[[dict[str, Any]], Reply]


@dataclass
class ScriptedJudge:
    """Answers chat completions with `script(request)`: a number is a verdict score (0..10, GEval's scale),
    a string is the raw message content, `(status, body)` an error answer, `None` a hang (a timeout)."""

    script: Script = lambda request: 7
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    url: str = ""
    hang_s: float = 3.0

    @property
    def calls(self) -> int:
        return len(self.requests)

    def models(self) -> list[str]:
        return [request["model"] for request in self.requests]


def prompt_of(request: dict[str, Any]) -> str:
    return request["messages"][-1]["content"]


def output_in(request: dict[str, Any]) -> str:
    """The `Actual Output` the GEval prompt shows the judge."""
    match = re.search(r"Actual Output:\s*\n?(.*?)\n", prompt_of(request))
    return match.group(1).strip() if match else ""


def _handler(judge: ScriptedJudge) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
            judge.requests.append(body)
            judge.headers.append({k.lower(): v for k, v in self.headers.items()})
            reply = judge.script(body)
            if reply is None:
                time.sleep(judge.hang_s)
                return
            status, content = 200, reply
            if isinstance(reply, tuple):
                status, content = reply
            if isinstance(content, int | float) and not isinstance(content, bool):
                content = orjson.dumps({"reason": "scripted", "score": content}).decode()
            if status != 200:
                payload = orjson.dumps({"error": {"message": str(content), "type": "server_error"}})
            else:
                payload = orjson.dumps({
                    "id": "x", "object": "chat.completion", "model": body.get("model"),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                })
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the judge's client gave up first (a timeout test)

    return Handler


@pytest.fixture
def scripted_judge() -> Iterator[ScriptedJudge]:
    judge = ScriptedJudge()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(judge))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    judge.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield judge
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def judge_engine(sqlite_url: str) -> Iterator[Any]:
    engine = open_database(sqlite_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def make_runtime(scripted_judge: ScriptedJudge, judge_engine: Any) -> Iterator[Callable[..., JudgeRuntime]]:
    """`make_runtime(**judge_settings)`: a runtime judging with the scripted judge, made the active one."""
    made: list[JudgeRuntime] = []

    def make(**settings: Any) -> JudgeRuntime:
        # Generous by default: a loaded machine must not turn a scripted answer into a timeout.
        runtime = JudgeRuntime(JudgeSettings(**{"timeout_s": 30.0, **settings}), scripted_judge.url,
                               default_model="judge-a", engine=judge_engine)
        made.append(runtime)
        use_runtime(runtime)
        return runtime

    try:
        yield make
    finally:
        for runtime in made:
            runtime.close()
        use_runtime(None)
        close_runtime()


def add_traffic(engine: Any, count: int, *, start: int = 0, age_s: float = 60.0, feature: str | None = "chat",
                confidence: float | None = None, stream: bool = False, model: str = "local/smollm2-135m") -> list[str]:
    """Log `count` successful chat calls (question i -> answer i); returns their traffic ids."""
    from datetime import timedelta

    from sqlmodel import Session

    from core.tables import TrafficRecord, utc_now

    ids = []
    with Session(engine) as session:
        for i in range(start, start + count):
            request = {"model": model, "messages": [{"role": "system", "content": "Be brief."},
                                                    {"role": "user", "content": f"question {i}"}]}
            answer = f"answer {i}"
            body = answer if stream else orjson.dumps(
                {"choices": [{"message": {"role": "assistant", "content": answer}}]}).decode()
            traffic_id = f"{i:032x}"
            ids.append(traffic_id)
            session.add(TrafficRecord(
                id=traffic_id, request_id=f"req-{i}", created_at=utc_now() - timedelta(seconds=age_s),
                endpoint="chat", requested_model=model, served_model=model, feature=feature, stream=stream,
                status=200, request_body=orjson.dumps(request).decode(), response_body=body, latency_ms=5.0,
                confidence=confidence, prompt_name="support",
            ))
        session.commit()
    return ids
