"""Validation of incoming OpenAI requests: cheap checks with precise messages.

Only what the sidecar must know to route, and what an upstream would otherwise reject with a vaguer
message, is checked here; everything else is passed through to the upstream unchanged.
"""

from __future__ import annotations

from typing import Any

import orjson

from sidecar.errors import InvalidRequest

_ROLES = frozenset({"system", "user", "assistant", "tool", "function", "developer"})
_UNIT_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}
_POSITIVE_INTS = ("max_tokens", "max_completion_tokens", "n", "top_logprobs", "dimensions")


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Parse a request body that must be a JSON object."""
    if not body:
        raise InvalidRequest("request body is empty; expected a JSON object")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidRequest(f"request body must be a JSON object, got {_json_type(data)}")
    return data


def validate_chat(data: dict[str, Any]) -> None:
    """Check a `/v1/chat/completions` request."""
    _require_model(data)
    messages = data.get("messages")
    if messages is None and isinstance(data.get("prompt"), dict):  # a prompt served by name: the release stage renders the messages
        _check_common(data)
        return
    if messages is None:
        raise InvalidRequest("'messages' is a required property", param="messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array", param="messages")
    for index, message in enumerate(messages):
        _check_message(index, message)
    _check_common(data)


def validate_completion(data: dict[str, Any]) -> None:
    """Check a `/v1/completions` request."""
    _require_model(data)
    prompt = data.get("prompt")
    if prompt is None:
        raise InvalidRequest("'prompt' is a required property", param="prompt")
    if not isinstance(prompt, str | list):
        raise InvalidRequest(f"'prompt' must be a string or an array, got {_json_type(prompt)}", param="prompt")
    _check_common(data)


def validate_embeddings(data: dict[str, Any]) -> None:
    """Check a `/v1/embeddings` request."""
    _require_model(data)
    value = data.get("input")
    if value is None:
        raise InvalidRequest("'input' is a required property", param="input")
    if not isinstance(value, str | list) or (isinstance(value, list) and not value):
        raise InvalidRequest("'input' must be a string or a non-empty array", param="input")
    encoding = data.get("encoding_format")
    if encoding is not None and encoding not in ("float", "base64"):
        raise InvalidRequest("'encoding_format' must be 'float' or 'base64'", param="encoding_format")
    _check_positive_ints(data)


def _require_model(data: dict[str, Any]) -> None:
    model = data.get("model")
    if model is None:
        raise InvalidRequest("'model' is a required property", param="model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest(f"'model' must be a non-empty string, got {_json_type(model)}", param="model")


def _check_message(index: int, message: Any) -> None:
    param = f"messages[{index}]"
    if not isinstance(message, dict):
        raise InvalidRequest(f"{param} must be an object, got {_json_type(message)}", param=param)
    role = message.get("role")
    if role not in _ROLES:
        allowed = ", ".join(sorted(_ROLES))
        raise InvalidRequest(f"{param}.role must be one of {allowed}; got {role!r}", param=f"{param}.role")
    content = message.get("content")
    if content is not None and not isinstance(content, str | list):
        raise InvalidRequest(
            f"{param}.content must be a string or an array of parts, got {_json_type(content)}",
            param=f"{param}.content",
        )
    if content is None and role in ("user", "system", "developer"):
        raise InvalidRequest(f"{param}.content is required for role {role!r}", param=f"{param}.content")


def _check_common(data: dict[str, Any]) -> None:
    stream = data.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest(f"'stream' must be a boolean, got {_json_type(stream)}", param="stream")
    options = data.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise InvalidRequest("'stream_options' must be an object", param="stream_options")
        if not stream:
            raise InvalidRequest("'stream_options' is only allowed when 'stream' is true", param="stream_options")
    for name, (low, high) in _UNIT_RANGES.items():
        value = data.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidRequest(f"'{name}' must be a number, got {_json_type(value)}", param=name)
        if not low <= value <= high:
            raise InvalidRequest(f"'{name}' must be between {low:g} and {high:g}, got {value}", param=name)
    _check_positive_ints(data)
    stop = data.get("stop")
    if stop is not None and not isinstance(stop, str | list):
        raise InvalidRequest("'stop' must be a string or an array of strings", param="stop")
    response_format = data.get("response_format")
    if response_format is not None and (not isinstance(response_format, dict) or "type" not in response_format):
        raise InvalidRequest("'response_format' must be an object with a 'type'", param="response_format")


def _check_positive_ints(data: dict[str, Any]) -> None:
    for name in _POSITIVE_INTS:
        value = data.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidRequest(f"'{name}' must be an integer, got {_json_type(value)}", param=name)
        if value < 1:
            raise InvalidRequest(f"'{name}' must be at least 1, got {value}", param=name)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
