"""Logged traffic read back as exchanges (request, input text, output text) for judging and for datasets.

Bodies in the traffic table are already PII-redacted by the sidecar's traffic writer. A streamed response is
stored as its generated text; a non-streamed one as the response JSON, from which the text is taken here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.tables import TrafficRecord, utc_now
from harness.errors import HarnessError

TRAFFIC: sa.Table = TrafficRecord.__table__  # type: ignore[attr-defined]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_PAGE = 500


def parse_duration(text: str) -> timedelta:
    """`90s`, `15m`, `24h`, `7d`, `2w` as a timedelta; HarnessError otherwise."""
    match = _DURATION.match(text)
    if match is None:
        raise HarnessError(f"duration {text!r} is not a number followed by s, m, h, d or w (e.g. 24h)")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


@dataclass(frozen=True, slots=True)
class Exchange:
    """One logged request and its answer."""

    id: str
    created_at: datetime
    request: dict[str, Any]
    input: str
    output: str
    model: str | None
    prompt_name: str | None
    feature: str | None
    request_id: str | None
    confidence: float | None


def message_text(content: Any) -> str:
    """The text of a message's content (a string, or a list of parts with `text`)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def split_request(body: str | None) -> tuple[dict[str, Any], str, str]:
    """(request, user input text, system/context text) from a logged request body."""
    try:
        request = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        return {}, body or "", ""
    if not isinstance(request, dict):
        return {}, "", ""
    users: list[str] = []
    systems: list[str] = []
    for message in request.get("messages") or ():
        if isinstance(message, dict):
            text = message_text(message.get("content"))
            (systems if message.get("role") in ("system", "developer") else users).append(text)
    if not users and isinstance(request.get("prompt"), str):
        users.append(request["prompt"])
    return request, "\n".join(u for u in users if u), "\n".join(s for s in systems if s)


def response_text(body: str | None) -> str:
    """The generated text from a logged response body (JSON of a completion, or streamed text)."""
    if not body:
        return ""
    if body.lstrip().startswith("{"):
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body
        if isinstance(document, dict) and isinstance(document.get("choices"), list):
            parts = []
            for choice in document["choices"]:
                if isinstance(choice, dict):
                    parts.append(message_text((choice.get("message") or {}).get("content")) or choice.get("text") or "")
            return "".join(parts)
    return body


def exchange_from_row(row: Mapping[str, Any]) -> Exchange:
    request, user_input, _system = split_request(row.get("request_body"))
    created = row["created_at"]
    return Exchange(
        id=row["id"], created_at=created, request=request, input=user_input,
        output=response_text(row.get("response_body")), model=row.get("served_model") or row.get("requested_model"),
        prompt_name=row.get("prompt_name"), feature=row.get("feature"), request_id=row.get("request_id"),
        confidence=row.get("confidence"),
    )


def iter_traffic(engine: Engine, *, since: timedelta | None = None, now: datetime | None = None,
                 where: list[Any] | None = None) -> Iterator[dict[str, Any]]:
    """Successful logged chat/completions rows (oldest first), read in pages so memory stays flat."""
    clauses = [TRAFFIC.c.status == 200, TRAFFIC.c.response_body.is_not(None), *(where or [])]
    if since is not None:
        clauses.append(TRAFFIC.c.created_at >= (now or utc_now()) - since)
    query = sa.select(TRAFFIC).where(*clauses).order_by(TRAFFIC.c.created_at, TRAFFIC.c.id)
    offset = 0
    while True:
        with engine.connect() as connection:
            rows = [dict(row) for row in connection.execute(query.limit(_PAGE).offset(offset)).mappings()]
        yield from rows
        if len(rows) < _PAGE:
            return
        offset += _PAGE


def not_judge_traffic(feature: str) -> Any:
    """Leave the judges' own calls out: judging the judge is not online evaluation."""
    return sa.or_(TRAFFIC.c.feature.is_(None), TRAFFIC.c.feature != feature)
