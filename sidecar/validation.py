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
MAX_OUTPUT_TOKENS = 1_048_576
"""The hard cap on `max_tokens`/`max_completion_tokens` for a model without a configured `context_window`."""
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Inclusive integer bounds, OpenAI's documented limits where it documents one, a generous hard cap otherwise.
_INT_BOUNDS: dict[str, tuple[int, int]] = {
    "max_tokens": (1, MAX_OUTPUT_TOKENS),
    "max_completion_tokens": (1, MAX_OUTPUT_TOKENS),
    "n": (1, 128),
    "top_logprobs": (0, 20),
    "dimensions": (1, 65_536),
}
_EMBEDDING_INTS = ("dimensions",)
_COMPLETION_INTS: dict[str, tuple[int, int]] = {"best_of": (1, 20), "logprobs": (0, 5)}
MAX_STOP_SEQUENCES = 4
MAX_LOGIT_BIAS_ENTRIES = 1024
MAX_TOOLS = 128
MAX_USER_CHARS = 256


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
        _check_chat_only(data)
        return
    if messages is None:
        raise InvalidRequest("'messages' is a required property", param="messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array", param="messages")
    for index, message in enumerate(messages):
        _check_message(index, message)
    _check_common(data)
    _check_chat_only(data)


def validate_completion(data: dict[str, Any]) -> None:
    """Check a `/v1/completions` request."""
    _require_model(data)
    prompt = data.get("prompt")
    if prompt is None:
        raise InvalidRequest("'prompt' is a required property", param="prompt")
    if not isinstance(prompt, str | list):
        raise InvalidRequest(f"'prompt' must be a string or an array, got {_json_type(prompt)}", param="prompt")
    _check_common(data)
    _check_completion_only(data)


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
    _check_ints(data, {name: _INT_BOUNDS[name] for name in _EMBEDDING_INTS})
    _check_user(data)


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
    _check_ints(data, _INT_BOUNDS)
    _check_ints(data, {"seed": (INT64_MIN, INT64_MAX)})
    _check_stop(data.get("stop"))
    _check_logit_bias(data.get("logit_bias"))
    response_format = data.get("response_format")
    if response_format is not None and (not isinstance(response_format, dict) or "type" not in response_format):
        raise InvalidRequest("'response_format' must be an object with a 'type'", param="response_format")
    _check_user(data)


def _check_chat_only(data: dict[str, Any]) -> None:
    """Chat's `logprobs` is a switch that `top_logprobs` needs; tools are bounded like OpenAI's."""
    logprobs = data.get("logprobs")
    if logprobs is not None and not isinstance(logprobs, bool):
        raise InvalidRequest(f"'logprobs' must be a boolean, got {_json_type(logprobs)}", param="logprobs")
    if data.get("top_logprobs") is not None and logprobs is not True:
        raise InvalidRequest("'top_logprobs' requires 'logprobs' to be true", param="top_logprobs")
    tools = data.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise InvalidRequest(f"'tools' must be an array, got {_json_type(tools)}", param="tools")
    if tools is not None and len(tools) > MAX_TOOLS:
        raise InvalidRequest(f"'tools' holds at most {MAX_TOOLS} tools, got {len(tools)}", param="tools")


def _check_completion_only(data: dict[str, Any]) -> None:
    """Completions' `logprobs` is a count (0-5) and `best_of` must cover `n`."""
    _check_ints(data, _COMPLETION_INTS)
    best_of, n = data.get("best_of"), data.get("n")
    if best_of is not None and n is not None and best_of < n:
        raise InvalidRequest(f"'best_of' ({best_of}) must be at least 'n' ({n})", param="best_of")
    echo = data.get("echo")
    if echo is not None and not isinstance(echo, bool):
        raise InvalidRequest(f"'echo' must be a boolean, got {_json_type(echo)}", param="echo")


def check_output_tokens(data: dict[str, Any], context_window: int | None) -> None:
    """Refuse an output budget larger than the model's configured context window (400 naming the parameter)."""
    if context_window is None:
        return
    for name in ("max_tokens", "max_completion_tokens"):
        value = data.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > context_window:
            raise InvalidRequest(
                f"'{name}' is {value}, more than the context window of model '{data.get('model')}' "
                f"({context_window} tokens)",
                param=name,
            )


def _check_ints(data: dict[str, Any], bounds: dict[str, tuple[int, int]]) -> None:
    for name, (low, high) in bounds.items():
        value = data.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidRequest(f"'{name}' must be an integer, got {_json_type(value)}", param=name)
        if value < low:
            raise InvalidRequest(f"'{name}' must be at least {low}, got {value}", param=name)
        if value > high:
            raise InvalidRequest(f"'{name}' must be at most {high}, got {value}", param=name)


def _check_stop(stop: Any) -> None:
    if stop is None or isinstance(stop, str):
        return
    if not isinstance(stop, list) or not all(isinstance(item, str) for item in stop):
        raise InvalidRequest("'stop' must be a string or an array of strings", param="stop")
    if len(stop) > MAX_STOP_SEQUENCES:
        raise InvalidRequest(f"'stop' holds at most {MAX_STOP_SEQUENCES} sequences, got {len(stop)}", param="stop")


def _check_logit_bias(bias: Any) -> None:
    if bias is None:
        return
    if not isinstance(bias, dict):
        raise InvalidRequest(f"'logit_bias' must be an object, got {_json_type(bias)}", param="logit_bias")
    if len(bias) > MAX_LOGIT_BIAS_ENTRIES:
        raise InvalidRequest(
            f"'logit_bias' holds at most {MAX_LOGIT_BIAS_ENTRIES} tokens, got {len(bias)}", param="logit_bias"
        )
    for token, value in bias.items():
        if not token.isascii() or not token.isdigit():
            raise InvalidRequest(f"'logit_bias' keys must be token ids, got {token[:40]!r}", param="logit_bias")
        if isinstance(value, bool) or not isinstance(value, int | float) or not -100 <= value <= 100:
            raise InvalidRequest(
                f"'logit_bias' values must be numbers between -100 and 100, got {_short(value)} for token {token}",
                param="logit_bias",
            )


def _check_user(data: dict[str, Any]) -> None:
    user = data.get("user")
    if user is None:
        return
    if not isinstance(user, str):
        raise InvalidRequest(f"'user' must be a string, got {_json_type(user)}", param="user")
    if len(user) > MAX_USER_CHARS:
        raise InvalidRequest(f"'user' is at most {MAX_USER_CHARS} characters, got {len(user)}", param="user")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


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
