"""Batch input lines: `{"custom_id", "method": "POST", "url", "body"}`, checked before a batch starts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

MAX_REPORTED_ERRORS = 20


class InvalidLine(Exception):
    """An input line that is not a batch request; the message says why."""


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """One request of a batch, ready to send through the sidecar."""

    custom_id: str
    url: str
    body: dict[str, Any]


def parse_line(line: bytes) -> BatchRequest:
    """A request from one input line; raises `InvalidLine` with the reason when the line is not one."""
    try:
        item = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise InvalidLine(f"not JSON ({exc})") from None
    if not isinstance(item, dict):
        raise InvalidLine("a line must be a JSON object")
    custom_id, method, url, body = item.get("custom_id"), item.get("method"), item.get("url"), item.get("body")
    if not isinstance(custom_id, str) or not custom_id:
        raise InvalidLine("custom_id must be a non-empty string")
    if method != "POST":
        raise InvalidLine("method must be POST")
    if not isinstance(url, str):
        raise InvalidLine("url must be a string")
    if not isinstance(body, dict):
        raise InvalidLine("body must be a JSON object")
    return BatchRequest(custom_id, url, body)


def check_input(lines: Iterable[tuple[int, bytes]], endpoint: str, max_requests: int) -> tuple[int, list[dict]]:
    """Count the requests of an input file and list what is wrong with it (OpenAI error objects)."""
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    count = 0
    for number, line in lines:
        count += 1
        try:
            request = parse_line(line)
        except InvalidLine as exc:
            errors.append(_error("invalid_request", str(exc), number))
            continue
        if request.url != endpoint:
            errors.append(_error("mismatched_endpoint", f"url {request.url} differs from the batch's {endpoint}", number))
        if request.custom_id in seen:
            errors.append(_error("duplicate_custom_id", f"custom_id {request.custom_id!r} is used twice", number))
        seen.add(request.custom_id)
        if len(errors) >= MAX_REPORTED_ERRORS:
            break
    if count == 0:
        errors.append(_error("empty_file", "the input file has no requests", None))
    if count > max_requests:
        errors.append(_error("too_many_requests", f"{count} requests, the limit is {max_requests}", None))
    return count, errors


def _error(code: str, message: str, line: int | None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": None, "line": line}
