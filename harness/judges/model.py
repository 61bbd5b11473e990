"""The judge model: a deepeval `DeepEvalBaseLLM` that calls any OpenAI-compatible endpoint (the sidecar).

Every call is tagged as judge traffic (`X-Tollgate-Feature: judge`), so the sidecar logs and prices it. When a
metric asks for a pydantic schema, the schema goes out as `response_format: {type: json_schema}`: llama.cpp
and vLLM constrain decoding to it, which is what makes a 135M model usable as a default judge at all.
Strings in the schema are capped in length so a rambling `reason` cannot run into `max_tokens` and leave
the verdict unparseable.

Anything that goes wrong (timeout, HTTP error, a verdict that does not parse) raises `JudgeFailure`; the
caller turns it into an unscored verdict, never into a pass or a fail.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from harness.errors import HarnessError

_REASON_MAX_CHARS = 300
# Sends one chat-completions body with headers and returns the answer's text (raising JudgeFailure).
Transport = Callable[[dict[str, Any], dict[str, str]], Awaitable[str]]


class JudgeFailure(HarnessError):
    """The judge gave no usable verdict (timeout, error answer, unparseable output)."""


@dataclass(frozen=True, slots=True)
class JudgeSpec:
    """Which model judges and with which parameters; `id` names it in provenance and cache keys."""

    model: str
    temperature: float = 0.0
    max_tokens: int = 256

    @property
    def id(self) -> str:
        return f"{self.model}(t={self.temperature:g},max_tokens={self.max_tokens})"


def constrain_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of a pydantic JSON schema made safe for constrained decoding by a small model.

    Strings get a `maxLength`; a number property named `score` becomes an integer in 0..10 (GEval's scale),
    so the grammar cannot emit 85 or 7.3333333333 until the token limit cuts it off.
    """
    shaped = copy.deepcopy(schema)

    def visit(node: Any, key: str | None = None) -> None:
        if isinstance(node, dict):
            if node.get("type") == "string" and "maxLength" not in node and "enum" not in node:
                node["maxLength"] = _REASON_MAX_CHARS
            if key == "score" and node.get("type") == "number":
                node.update(type="integer", minimum=0, maximum=10)
            for name, child in list(node.items()):
                if name == "properties" and isinstance(child, dict):
                    for prop, sub in child.items():
                        visit(sub, prop)
                else:
                    visit(child)
        elif isinstance(node, list):
            for child in node:
                visit(child)

    visit(shaped)
    return shaped


def _load_deepeval_base() -> type:
    from deepeval.models import DeepEvalBaseLLM

    return DeepEvalBaseLLM


def _parse(content: str, schema: Any) -> Any:
    """The verdict as an instance of `schema`; JudgeFailure when it is not one."""
    text = content.strip()
    start, end = text.find("{"), text.rfind("}")
    candidates = [text] + ([text[start:end + 1]] if 0 <= start < end else [])
    for candidate in candidates:
        try:
            return schema.model_validate_json(candidate)
        except ValueError:
            continue
    preview = text[:80] + ("…" if len(text) > 80 else "")
    raise JudgeFailure(f"unparseable verdict: {preview!r}")


class _JudgeCalls:
    """Request building and answer reading shared by the sync and async paths."""

    def __init__(self, spec: JudgeSpec, base_url: str, *, timeout_s: float, feature: str,
                 headers: dict[str, str] | None = None, transport: Transport | None = None) -> None:
        self.spec = spec
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.timeout_s = timeout_s
        self.headers = {"Content-Type": "application/json", "X-Tollgate-Feature": feature, **(headers or {})}
        self.transport = transport
        self.calls = 0

    def body(self, prompt: str, schema: Any) -> bytes:
        return orjson.dumps(self.payload(prompt, schema))

    def payload(self, prompt: str, schema: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.spec.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": self.spec.temperature,
            "max_tokens": self.spec.max_tokens,
        }
        if schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": schema.__name__, "schema": constrain_schema(schema.model_json_schema()),
                                "strict": True},
            }
        return body

    def content(self, response: httpx.Response) -> str:
        if response.status_code != 200:
            raise JudgeFailure(f"judge {self.spec.model} answered HTTP {response.status_code}: {response.text[:200]}")
        try:
            data = orjson.loads(response.content)
            content = data["choices"][0]["message"]["content"]
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
            raise JudgeFailure(f"judge {self.spec.model} sent a body that is not a chat completion") from exc
        if not isinstance(content, str):
            raise JudgeFailure(f"judge {self.spec.model} sent no text")
        return content


def make_judge_model(spec: JudgeSpec, base_url: str, *, timeout_s: float = 60.0, feature: str = "judge",
                     headers: dict[str, str] | None = None, transport: Transport | None = None) -> Any:
    """A deepeval model object judging with `spec` through the OpenAI-compatible `base_url` (…/v1), or through
    `transport` when one is given (a pytest session queues judge calls behind its model calls).

    Built by a function so that importing this module does not import deepeval (≈1.3 s).
    """
    calls = _JudgeCalls(spec, base_url, timeout_s=timeout_s, feature=feature, headers=headers, transport=transport)
    return _judge_class()(calls)


_CLASS: type | None = None


def _judge_class() -> type:
    global _CLASS
    if _CLASS is None:
        base = _load_deepeval_base()

        class SidecarJudge(base):  # type: ignore[valid-type,misc]
            """deepeval's view of a judge: `generate` / `a_generate` with an optional pydantic schema."""

            def __init__(self, calls: _JudgeCalls) -> None:
                self.calls = calls
                super().__init__(calls.spec.model)

            def load_model(self, *args: Any, **kwargs: Any) -> Any:
                return self

            def get_model_name(self, *args: Any, **kwargs: Any) -> str:
                return self.calls.spec.id

            def generate(self, prompt: str, schema: Any = None, **_: Any) -> Any:
                # deepeval calls `a_generate` (metrics run with async_mode); this serves its synchronous paths.
                return asyncio.run(self.a_generate(prompt, schema))

            async def a_generate(self, prompt: str, schema: Any = None, **_: Any) -> Any:
                calls = self.calls
                calls.calls += 1
                if calls.transport is not None:
                    content = await calls.transport(calls.payload(prompt, schema), calls.headers)
                    return _parse(content, schema) if schema is not None else content
                try:
                    async with httpx.AsyncClient(timeout=calls.timeout_s) as client:
                        response = await client.post(calls.url, content=calls.body(prompt, schema),
                                                     headers=calls.headers)
                except httpx.TimeoutException as exc:
                    raise JudgeFailure(f"judge {calls.spec.model} timed out after {calls.timeout_s:g} s") from exc
                except httpx.HTTPError as exc:
                    raise JudgeFailure(f"judge {calls.spec.model} unreachable ({type(exc).__name__})") from exc
                content = calls.content(response)
                return _parse(content, schema) if schema is not None else content

        _CLASS = SidecarJudge
    return _CLASS
