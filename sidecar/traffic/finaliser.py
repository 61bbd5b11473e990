"""Turns a `RawTraffic` into a `traffic` row: usage, cost, timings, readable bodies, PII redacted.

Runs in the writer thread (or, on overflow, once per spooled record), never for every request on the
event loop.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
import sqlalchemy as sa

from core.pricing import PriceBook
from core.redaction import redact_pii
from core.settings import Settings
from core.tag_policy import TagPolicy
from sidecar.traffic.record import CACHE_SERVED, RawTraffic, TrafficRow
from sidecar.traffic.store import TRAFFIC_TABLE
from sidecar.traffic.usage import (
    TokenEstimator,
    Usage,
    completion_text,
    parse_json,
    request_text,
    summarise_stream,
    usage_from,
)

# Longer values would make PostgreSQL reject the whole batch; they are clipped instead.
_STRING_LIMITS: dict[str, int] = {
    column.name: length
    for column in TRAFFIC_TABLE.columns
    if (length := getattr(column.type, "length", None))
}
_TEXT_COLUMNS: tuple[str, ...] = tuple(
    column.name
    for column in TRAFFIC_TABLE.columns
    if isinstance(column.type, sa.String) or isinstance(getattr(column.type, "impl", None), sa.String)
)
# Columns a client can fill (tags, the model name): cleaned by the tag policy whichever path produced the
# record. Tags were already cleaned where they entered (`core.tag_policy`); cleaning again changes nothing and
# catches a path that forgot. Request ids are cleaned at the door only (the sidecar's own ids are hex).
_TAG_COLUMNS: tuple[str, ...] = (
    "requested_model", "user", "feature", "segment", "prompt_name", "prompt_version", "experiment", "route_reason",
)
# Texts that may quote what the client sent or the model answered: redacted like the bodies.
_QUOTING_COLUMNS: tuple[str, ...] = ("review_reason", "guard_events")
_TRUNCATED = "…[truncated]"
_MAX_ERROR_MESSAGE_CHARS = 2_000
_REDACTION_MARGIN = 256  # redact a little past the cut so a value straddling it is not half-kept


class RecordFinaliser:
    """Builds finalised rows according to the `traffic` settings."""

    def __init__(
        self, settings: Settings, prices: PriceBook, estimator: TokenEstimator | None = None
    ) -> None:
        self._traffic = settings.traffic
        self._prices = prices
        self._estimator = estimator or TokenEstimator()
        self._tags = TagPolicy(redact=self._traffic.redact_pii)

    def finalise(self, raw: RawTraffic) -> TrafficRow:
        """The row to store for `raw`; every column is present."""
        response_text: str | None
        if raw.stream:
            summary = summarise_stream(raw.response_chunks)
            generated, usage = summary.text, summary.usage
            response_text = generated
        else:
            document = parse_json(raw.response_body)
            generated, usage = completion_text(document), usage_from(document)
            response_text = _decode(raw.response_body)
        tokens_in, tokens_out, estimated = self._tokens(raw, usage, generated)
        model = raw.served_model or raw.requested_model
        request_body, response_body, error_message, redactions = self._texts(raw, response_text)
        row: TrafficRow = {
            "id": raw.row_id or uuid.uuid4().hex,
            "request_id": raw.request_id,
            "created_at": datetime.fromtimestamp(raw.started_at, UTC),
            "endpoint": raw.endpoint,
            "requested_model": raw.requested_model,
            "served_model": raw.served_model,
            "deployment": raw.deployment,
            "provider": raw.provider,
            "user": raw.user,
            "feature": raw.feature,
            "segment": raw.segment,
            "prompt_name": raw.prompt_name,
            "prompt_version": raw.prompt_version,
            "stream": bool(raw.stream),
            "status": int(raw.status),
            "error_class": raw.error_class,
            "error_message": error_message,
            "request_body": request_body,
            "response_body": response_body,
            "redactions": redactions,
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "usage_estimated": estimated,
            "cost_usd": self._cost(raw, model, tokens_in, tokens_out, usage),
            "ttft_ms": raw.ttft_ms,
            "tpot_ms": _tpot_ms(raw, tokens_out),
            "latency_ms": float(raw.latency_ms),
            "attempts": int(raw.attempts),
            "key_id": raw.key_id,
            "variant": raw.variant,
            "experiment": raw.experiment,
            "shadow_of": raw.shadow_of,
            "route_reason": raw.route_reason,
            "cache_status": raw.cache_status,
            "guard_events": orjson.dumps(raw.guard_events).decode() if raw.guard_events else None,
            "confidence": raw.confidence,
            "review_reason": raw.review_reason,
        }
        if self._traffic.redact_pii:
            clean = self._tags.clean
            for name in _TAG_COLUMNS:
                if row[name]:
                    row[name] = clean(row[name], _MAX_ERROR_MESSAGE_CHARS)
            for name in _QUOTING_COLUMNS:
                if row[name]:
                    row[name] = redact_pii(row[name])[0]
        return clip_strings(row)

    def _cost(
        self, raw: RawTraffic, model: str | None, tokens_in: int | None, tokens_out: int | None, usage: Usage | None
    ) -> float | None:
        """What the call cost upstream: nothing for an answer served from the sidecar's cache."""
        if raw.cache_status in CACHE_SERVED:
            return 0.0
        if not model:
            return None
        cached_in = usage.cached_in if usage else None
        cache_write_in = usage.cache_write_in if usage else None
        return self._prices.cost(model, tokens_in, tokens_out, cached_in=cached_in, cache_write_in=cache_write_in)

    def _tokens(
        self, raw: RawTraffic, usage: Usage | None, generated: str
    ) -> tuple[int | None, int | None, bool]:
        """Reported counts, with missing ones estimated (flagged) unless the request failed before output."""
        tokens_in = usage.tokens_in if usage else None
        tokens_out = usage.tokens_out if usage else None
        if tokens_in is not None and tokens_out is not None:
            return tokens_in, tokens_out, False
        if raw.status >= 400 and usage is None:
            return None, None, False  # nothing was generated and nobody reported a bill
        if tokens_in is None:
            tokens_in = self._estimator.count(request_text(parse_json(raw.request_body)))
        if tokens_out is None:
            tokens_out = 0 if raw.endpoint == "embeddings" else self._estimator.count(generated)
        return tokens_in, tokens_out, True

    def _texts(
        self, raw: RawTraffic, response_text: str | None
    ) -> tuple[str | None, str | None, str | None, int]:
        """Bodies (None when bodies are not logged) and the error message, cleaned; plus the redaction count."""
        request_body = response_body = None
        redactions = 0
        if self._traffic.log_bodies:
            limit = self._traffic.max_logged_body_chars
            request_body, found_in = self._clean(_decode(raw.request_body), limit)
            response_body, found_out = self._clean(response_text, limit)
            redactions += found_in + found_out
        error_message, found = self._clean(raw.error_message, _MAX_ERROR_MESSAGE_CHARS)
        return request_body, response_body, error_message, redactions + found

    def _clean(self, text: str | None, limit: int) -> tuple[str | None, int]:
        """Redact (when configured) and truncate; redaction runs first so no value is cut in half."""
        if text is None:
            return None, 0
        found = 0
        if self._traffic.redact_pii:
            text, found = redact_pii(text[: limit + _REDACTION_MARGIN])
        if len(text) > limit:
            text = text[: max(limit - len(_TRUNCATED), 0)] + _TRUNCATED
        return text, found


def clip_strings(row: TrafficRow) -> TrafficRow:
    """Make every string storable: no NUL characters (PostgreSQL refuses them), no value over its column."""
    for name in _TEXT_COLUMNS:
        value = row[name]
        if value is not None and "\x00" in value:
            row[name] = value = value.replace("\x00", "")
        limit = _STRING_LIMITS.get(name)
        if limit is not None and value is not None and len(value) > limit:
            row[name] = value[:limit]
    return row


def _decode(body: bytes | None) -> str | None:
    if body is None:
        return None
    return body.decode("utf-8", errors="replace")


def _tpot_ms(raw: RawTraffic, tokens_out: int | None) -> float | None:
    if not raw.stream or raw.ttft_ms is None or tokens_out is None or tokens_out <= 0:
        return None
    return max(raw.latency_ms - raw.ttft_ms, 0.0) / max(tokens_out - 1, 1)
