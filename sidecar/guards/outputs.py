"""Structured output checked against a schema, with the fallback chain when it fails.

The schema is the guard's own, else the request's `response_format` (`json_schema`; `json_object` only asks
for a JSON object), else the output schema of the prompt named by the request's prompt tag. A failing
answer goes down the chain, each step recorded as a guard event:
1. `retry` (up to `retries` times): ask again with the answer and its validation errors appended;
2. `fallback_model`: ask the routing stage's escalation target, else the policy's fallback model;
3. `fallback_response`: serve the configured simpler answer;
4. `escalate`: 422 `output_validation_failed` and a review item.
"""

from __future__ import annotations

import json
import time
from functools import lru_cache
from typing import Any

import orjson

from sidecar.errors import OutputRejected, SidecarError
from sidecar.guards.events import Finding
from sidecar.guards.text import reply_text
from sidecar.pipeline import Exchange, Reply

JSON_OBJECT: dict[str, Any] = {"type": "object"}
_MAX_ERRORS = 5


def schema_for(own: dict[str, Any] | None, payload: dict[str, Any], prompt_schema: dict[str, Any] | None
               ) -> dict[str, Any] | None:
    """The schema an answer must match, or None when nothing asks for structured output."""
    if own is not None:
        return own
    fmt = payload.get("response_format")
    if isinstance(fmt, dict):
        if fmt.get("type") == "json_schema" and isinstance(fmt.get("json_schema"), dict):
            schema = fmt["json_schema"].get("schema")
            return schema if isinstance(schema, dict) else JSON_OBJECT
        if fmt.get("type") == "json_object":
            return JSON_OBJECT
    return prompt_schema


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> Any:
    from jsonschema.validators import validator_for  # imported when the first schema is checked

    schema = json.loads(schema_json)
    cls = validator_for(schema)
    return cls(schema)


def check_text(text: str | None, schema: dict[str, Any]) -> tuple[list[str], Any]:
    """Validation errors of an answer's text (empty when valid) and the parsed value (None if not JSON).

    A value wrapped in a Markdown code fence counts as JSON: models often add one.
    """
    if text is None:
        return ["the answer has no text"], None
    try:
        value = orjson.loads(_unfence(text))
    except orjson.JSONDecodeError as exc:
        return [f"not valid JSON ({exc})"], None
    validator = _validator(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS).decode())
    errors = [
        f"{error.json_path}: {error.message}" for error in sorted(validator.iter_errors(value), key=str)
    ][:_MAX_ERRORS]
    return errors, value


def _unfence(text: str) -> str:
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        stripped = stripped.rsplit("```", 1)[0]
    return stripped


def check_reply(reply: Reply, schema: dict[str, Any]) -> list[str]:
    """Validation errors of a 200 answer; a fenced valid answer is rewritten to its bare JSON."""
    document = reply.document()
    text = reply_text(document)
    errors, value = check_text(text, schema)
    if not errors and text is not None and value is not None and _unfence(text) != text:
        _set_text(document, orjson.dumps(value).decode())
        reply.replace_document(document)
    return errors


def retry_payload(payload: dict[str, Any], answer: str | None, errors: list[str], schema: dict[str, Any]
                  ) -> dict[str, Any]:
    """The request again, with the failed answer and what was wrong with it."""
    instruction = (
        "Your previous answer did not match the required format: " + "; ".join(errors)
        + ". Answer again with only a JSON value that matches this JSON schema, and nothing else: "
        + orjson.dumps(schema).decode()
    )
    messages = payload.get("messages")
    if isinstance(messages, list):
        extra = [{"role": "assistant", "content": answer or ""}, {"role": "user", "content": instruction}]
        return {**payload, "messages": [*messages, *extra]}
    prompt = payload.get("prompt")
    if isinstance(prompt, str):
        return {**payload, "prompt": f"{prompt}{answer or ''}\n\n{instruction}\n"}
    return payload


def fallback_reply(exchange: Exchange, text: str) -> Reply:
    """A complete answer carrying the configured fallback text."""
    model = exchange.payload.get("model")
    if exchange.endpoint == "completions":
        choice: dict[str, Any] = {"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}
        kind = "text_completion"
    else:
        message = {"role": "assistant", "content": text, "refusal": None}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
        kind = "chat.completion"
    document = {
        "id": f"tollgate-fallback-{exchange.record.request_id}",
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }
    return Reply(200, orjson.dumps(document), [(b"x-tollgate-fallback", b"response")])


def _set_text(document: dict[str, Any], text: str) -> None:
    choice = document["choices"][0]
    if isinstance(choice.get("message"), dict):
        choice["message"]["content"] = text
    else:
        choice["text"] = text


class SchemaChain:
    """Runs the fallback chain for one guard; `note(step, finding)` records each step."""

    def __init__(self, label: str, retries: int, fallback_model: str | None, fallback_response: str | None) -> None:
        self.label = label
        self.retries = retries
        self.fallback_model = fallback_model
        self.fallback_response = fallback_response

    async def enforce(self, exchange: Exchange, reply: Reply, schema: dict[str, Any], note: Any) -> Reply:
        """A valid reply, a fallback one, or `OutputRejected` after every step failed."""
        if reply.status != 200:
            return reply
        errors = check_reply(reply, schema)
        if not errors:
            return reply
        first_errors = errors
        payload = exchange.payload
        for attempt in range(self.retries):
            note("retry", Finding("schema_invalid", "; ".join(errors), float(attempt + 1)))
            again = await _ask(exchange, retry_payload(payload, reply_text(reply.document()), errors, schema))
            if again is not None and again.status == 200:
                reply, errors = again, check_reply(again, schema)
                if not errors:
                    return reply
        fallback = exchange.escalate_to or self.fallback_model
        if fallback:
            note("fallback_model", Finding("schema_invalid", "; ".join(errors)))
            again = await _ask(exchange, {**payload, "model": fallback})
            if again is not None and again.status == 200:
                retried = check_reply(again, schema)
                if not retried:
                    again.headers.append((b"x-tollgate-fallback", b"model"))
                    return again
                errors = retried
        if self.fallback_response is not None:
            note("fallback_response", Finding("schema_invalid", "; ".join(errors)))
            return fallback_reply(exchange, self.fallback_response)
        finding = Finding("output_validation_failed", "; ".join(errors or first_errors))
        note("escalate", finding)
        exchange.record.review_reason = f"guard: {self.label} output_validation_failed: {finding.message}"[:500]
        raise OutputRejected(f"{self.label}: the answer failed validation and every fallback did too: "
                             f"{finding.message}")


async def _ask(exchange: Exchange, payload: dict[str, Any]) -> Reply | None:
    """One more upstream call; an upstream failure ends that step, not the chain."""
    if exchange.resend is None:
        return None
    try:
        return await exchange.resend(payload)
    except SidecarError:
        return None
