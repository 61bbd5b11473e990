"""The guards as the stage runs them: what each does to a request, an answer and a stream.

A check has a `label` (its name in events and metrics) and an `action`, and implements the steps it takes
part in: `on_request` (may rewrite `exchange.payload`), `on_reply` (non-stream answers) and `on_stream`
(adds look-back redaction or end-of-stream checks to the request's stream filter).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.config.guards import (
    AllowedParamsGuard,
    ConfidenceGuard,
    ContextLengthGuard,
    MaxSizeGuard,
    OutputSchemaGuard,
    PiiGuard,
)
from sidecar.errors import OutputRejected
from sidecar.guards.confidence import LogprobTally, answer_confidence, request_logprobs, strip_logprobs
from sidecar.guards.detectors import PiiDetector, SizeDetector, TextDetector
from sidecar.guards.events import Finding
from sidecar.guards.outputs import SchemaChain, check_text, schema_for
from sidecar.guards.pii import Masker, redact_text
from sidecar.guards.streams import EndCheck
from sidecar.guards.text import reply_text, request_texts, rewrite_reply, rewrite_request, user_text
from sidecar.guards.tokens import CharsCounter, TokenCounter
from sidecar.pipeline import Exchange, Reply, StreamBlocked

log = logging.getLogger("tollgate.sidecar.guards")
_ALWAYS_ALLOWED = frozenset({"model", "messages", "prompt", "input", "stream", "stream_options"})


class Run:
    """One request's guard bookkeeping: `act` records a trigger and applies the action."""

    def __init__(self, exchange: Exchange, act: Callable[[Exchange, str, Finding, str], None],
                 note: Callable[[Exchange, str, Finding, str], None]) -> None:
        self.exchange = exchange
        self._act = act
        self._note = note
        self.masker: Masker | None = None
        self.asked_logprobs = False

    def act(self, label: str, finding: Finding, action: str) -> None:
        """Record the trigger and apply `block` (raises) or `flag`; other actions are only recorded."""
        self._act(self.exchange, label, finding, action)

    def note(self, label: str, finding: Finding, action: str) -> None:
        """Record the trigger only (the caller acts: a chain step, a stream block, a hold)."""
        self._note(self.exchange, label, finding, action)


@dataclass
class StreamParts:
    """What the checks contribute to one stream's filter."""

    redact_kinds: set[str] = field(default_factory=set)
    block_kinds: set[str] = field(default_factory=set)
    on_pii: list[Callable[[str], None]] = field(default_factory=list)
    end_checks: list[EndCheck] = field(default_factory=list)
    tally: LogprobTally | None = None


class Check:
    """A guard with nothing to do at any step; subclasses override the steps they take part in."""

    label: str
    action: str

    async def on_request(self, exchange: Exchange, run: Run) -> None:
        return None

    async def on_reply(self, exchange: Exchange, reply: Reply, run: Run) -> Reply:
        return reply

    def on_stream(self, exchange: Exchange, run: Run, parts: StreamParts) -> None:
        return None


class TextCheck(Check):
    """A text detector on the user's message (input), the answer (output), or both."""

    def __init__(self, label: str, action: str, detector: TextDetector, where: str, all_messages: bool = False) -> None:
        self.label = label
        self.action = action
        self.detector = detector
        self.input = where in ("input", "both")
        self.output = where in ("output", "both")
        self.all_messages = all_messages

    def needs_embedding(self, text: str) -> bool:
        """True when inspecting the user's `text` will embed it (so the stage embeds it off the event loop)."""
        if not self.input:
            return False
        decide = getattr(self.detector, "needs_embedding", None)
        return True if decide is None else bool(decide(text))

    def embedding_texts(self, text: str) -> list[str]:
        """The texts inspecting the user's `text` will embed (the text itself, or its readings)."""
        if not self.needs_embedding(text):
            return []
        readings = getattr(self.detector, "embedding_texts", None)
        return [text] if readings is None else list(readings(text))

    async def on_request(self, exchange: Exchange, run: Run) -> None:
        if not self.input:
            return
        payload = exchange.payload
        text = "\n".join(request_texts(payload)) if self.all_messages else user_text(payload)
        finding = self.detector.inspect(text)
        if finding is not None:
            run.act(self.label, finding, self.action)

    async def on_reply(self, exchange: Exchange, reply: Reply, run: Run) -> Reply:
        if self.output and reply.status == 200:
            finding = self.detector.inspect(reply_text(reply.document()) or "")
            if finding is not None:
                run.act(self.label, finding, self.action)
        return reply

    def on_stream(self, exchange: Exchange, run: Run, parts: StreamParts) -> None:
        if self.output:
            parts.end_checks.append(lambda text, _tally: _stream_verdict(run, self.label, self.action,
                                                                         self.detector.inspect(text)))


def _stream_verdict(run: Run, label: str, action: str, finding: Finding | None) -> None:
    """Apply an end-of-stream finding: `block` becomes `StreamBlocked` (the response has started)."""
    if finding is None:
        return
    if action == "block":
        run.note(label, finding, "block")
        raise StreamBlocked(f"{label}: {finding.message}", code=finding.reason)
    run.act(label, finding, action)


class SizeCheck(Check):
    def __init__(self, spec: MaxSizeGuard) -> None:
        self.label, self.action = spec.label, spec.action
        self.detector = SizeDetector(spec.max_chars)
        self.max_messages = spec.max_messages

    async def on_request(self, exchange: Exchange, run: Run) -> None:
        texts = request_texts(exchange.payload)
        if self.max_messages is not None and len(texts) > self.max_messages:
            message = f"the request has {len(texts)} messages, more than the {self.max_messages} allowed"
            run.act(self.label, Finding("too_many_messages", message, len(texts), self.max_messages), self.action)
        finding = self.detector.inspect("".join(texts))
        if finding is not None:
            run.act(self.label, finding, self.action)


class ParamsCheck(Check):
    def __init__(self, spec: AllowedParamsGuard) -> None:
        self.label, self.action = spec.label, spec.action
        self.allowed = frozenset(spec.allowed) | _ALWAYS_ALLOWED

    async def on_request(self, exchange: Exchange, run: Run) -> None:
        extra = sorted(set(exchange.payload) - self.allowed)
        if extra:
            run.act(self.label, Finding("param_not_allowed", f"parameter(s) not allowed: {', '.join(extra)}"),
                    self.action)


class ContextCheck(Check):
    """The prompt (plus the output it reserves) must fit; `redact` drops the oldest non-system turns."""

    def __init__(self, spec: ContextLengthGuard, counters: dict[str, TokenCounter]) -> None:
        self.label, self.action = spec.label, spec.action
        self.max_tokens = spec.max_tokens
        self.reserve_output = spec.reserve_output
        self.counters = counters
        self.fallback = CharsCounter()

    async def _count(self, exchange: Exchange, payload: dict[str, Any]) -> int:
        counter = self.counters.get(str(payload.get("model")), self.fallback)
        texts = request_texts(payload)
        try:
            tokens = await counter.count(texts, isinstance(payload.get("messages"), list))
        except Exception as exc:  # noqa: BLE001 - boundary: a tokenizer endpoint that fails must not fail the request
            log.warning("token count failed (%s); estimating from characters", exc)
            tokens = await self.fallback.count(texts, isinstance(payload.get("messages"), list))
        reserve = payload.get("max_completion_tokens") or payload.get("max_tokens")
        if self.reserve_output and isinstance(reserve, int) and reserve > 0:
            tokens += reserve
        return tokens

    async def on_request(self, exchange: Exchange, run: Run) -> None:
        tokens = await self._count(exchange, exchange.payload)
        if tokens <= self.max_tokens:
            return
        finding = Finding("context_length_exceeded",
                          f"the request needs {tokens} tokens, more than the {self.max_tokens} allowed",
                          float(tokens), float(self.max_tokens))
        if self.action != "redact":
            run.act(self.label, finding, self.action)
            return
        trimmed = await self._trim(exchange, exchange.payload)
        if trimmed is None:
            run.act(self.label, finding, "block")
            return
        run.act(self.label, finding, "redact")
        exchange.payload, exchange.body = trimmed, None

    async def _trim(self, exchange: Exchange, payload: dict[str, Any]) -> dict[str, Any] | None:
        """Drop whole turns, oldest first (never system messages, never the last message), until it fits.

        A turn is a user message and the answers after it (assistant, tool), so what is left still starts
        with a user message and never holds a tool answer without its call.
        """
        messages = payload.get("messages")
        if not isinstance(messages, list):
            return None
        kept = list(messages)
        while True:
            first = next((i for i, m in enumerate(kept[:-1]) if _role(m) != "system"), None)
            if first is None:
                return None
            del kept[first]
            while first < len(kept) - 1 and _role(kept[first]) not in ("user", "system"):
                del kept[first]
            candidate = {**payload, "messages": kept}
            if await self._count(exchange, candidate) <= self.max_tokens:
                return candidate


def _role(message: Any) -> Any:
    return message.get("role") if isinstance(message, dict) else None


class PiiCheck(Check):
    def __init__(self, spec: PiiGuard) -> None:
        self.label, self.action = spec.label, spec.action
        self.kinds = list(spec.kinds)
        self.detector = PiiDetector(spec.kinds)
        self.input = spec.where in ("input", "both")
        self.output = spec.where in ("output", "both")
        self.restore = spec.restore

    async def on_request(self, exchange: Exchange, run: Run) -> None:
        if not self.input:
            return
        texts = request_texts(exchange.payload)
        findings = [f for f in map(self.detector.inspect, texts) if f is not None]
        if not findings:
            return
        total = sum(f.score or 0 for f in findings)
        finding = Finding("pii_detected", f"{int(total)} PII value(s) in the request", total)
        run.act(self.label, finding, self.action)
        if self.action == "redact":
            if self.restore:
                masker = run.masker = run.masker or Masker(self.kinds)
                exchange.payload = rewrite_request(exchange.payload, masker.mask)
            else:
                exchange.payload = rewrite_request(exchange.payload, lambda text: redact_text(text, self.kinds))
            exchange.body = None

    async def on_reply(self, exchange: Exchange, reply: Reply, run: Run) -> Reply:
        if not self.output or reply.status != 200:
            return reply
        document = reply.document()
        finding = self.detector.inspect(reply_text(document) or "")
        if finding is None:
            return reply
        run.act(self.label, finding, self.action)
        if self.action == "redact" and rewrite_reply(document, lambda text: redact_text(text, self.kinds)):
            reply.replace_document(document)
        return reply

    def on_stream(self, exchange: Exchange, run: Run, parts: StreamParts) -> None:
        if not self.output:
            return
        if self.action in ("redact", "block"):
            (parts.redact_kinds if self.action == "redact" else parts.block_kinds).update(self.kinds)
            parts.on_pii.append(lambda text: _stream_verdict(run, self.label, self.action, self.detector.inspect(text)))
        else:
            parts.end_checks.append(lambda text, _t: _stream_verdict(run, self.label, self.action,
                                                                     self.detector.inspect(text)))


class SchemaCheck(Check):
    """Structured output; see `sidecar.guards.outputs` for the chain."""

    def __init__(self, spec: OutputSchemaGuard, fallback_model: str | None, prompt_schemas: dict[str, Any]) -> None:
        self.label, self.action = spec.label, spec.action
        self.own = spec.json_schema
        self.stream_mode = spec.stream
        self.prompt_schemas = prompt_schemas
        self.chain = SchemaChain(spec.label, spec.retries, spec.fallback_model or fallback_model,
                                 spec.fallback_response)

    def schema(self, exchange: Exchange) -> dict[str, Any] | None:
        prompt = self.prompt_schemas.get(exchange.record.prompt_name or "")
        return schema_for(self.own, exchange.payload, prompt)

    async def on_reply(self, exchange: Exchange, reply: Reply, run: Run) -> Reply:
        schema = self.schema(exchange)
        if schema is None or reply.status != 200:
            return reply
        if self.action != "block":
            errors, _ = check_text(reply_text(reply.document()), schema)
            if errors:
                run.act(self.label, Finding("schema_invalid", "; ".join(errors)), self.action)
            return reply
        return await self.chain.enforce(exchange, reply, schema, lambda step, f: run.act(self.label, f, step))

    def replays(self, exchange: Exchange) -> bool:
        """True when a stream request is answered after validation (the chain needs the whole answer)."""
        return self.action == "block" and self.stream_mode == "replay" and self.schema(exchange) is not None

    def on_stream(self, exchange: Exchange, run: Run, parts: StreamParts) -> None:
        schema = self.schema(exchange)
        if schema is None:
            return

        def check(text: str, _tally: LogprobTally) -> None:
            errors, _ = check_text(text, schema)
            if not errors:
                return
            finding = Finding("output_validation_failed", "; ".join(errors))
            if self.action == "block":
                run.note(self.label, finding, "escalate")
                exchange.record.review_reason = f"guard: {self.label} output_validation_failed: {finding.message}"[:500]
                raise StreamBlocked(f"{self.label}: {finding.message}", code="output_validation_failed",
                                    error_class="parse_failure")
            run.act(self.label, finding, self.action)

        parts.end_checks.append(check)


class ConfidenceCheck(Check):
    """Low confidence is flagged (`flag`) or held for review instead of served (`block`)."""

    def __init__(self, spec: ConfidenceGuard) -> None:
        self.label, self.action = spec.label, spec.action
        self.min_confidence = spec.min_confidence
        self.request = spec.request_logprobs

    async def on_request(self, exchange: Exchange, run: Run) -> None:
        if self.request and exchange.endpoint != "embeddings":
            changed = request_logprobs(exchange.payload, exchange.endpoint)
            if changed is not None:
                exchange.payload, exchange.body = changed, None
                run.asked_logprobs = True

    def _judge(self, exchange: Exchange, run: Run, confidence: float | None) -> Finding | None:
        exchange.record.confidence = confidence
        if confidence is None or confidence >= self.min_confidence:
            return None
        return Finding("low_confidence", f"confidence {confidence:.2f} is below {self.min_confidence}",
                       confidence, self.min_confidence)

    async def on_reply(self, exchange: Exchange, reply: Reply, run: Run) -> Reply:
        if reply.status != 200:
            return reply
        document = reply.document()
        finding = self._judge(exchange, run, answer_confidence(document))
        if run.asked_logprobs and isinstance(document, dict):
            strip_logprobs(document)
            reply.replace_document(document)
        if finding is None:
            return reply
        if self.action == "block":
            run.note(self.label, finding, "hold")
            exchange.record.review_reason = f"guard: {self.label} low_confidence: {finding.message}"
            raise OutputRejected(f"{self.label}: {finding.message}; the answer is held for review",
                                 code="low_confidence")
        run.act(self.label, finding, self.action)
        return reply

    def on_stream(self, exchange: Exchange, run: Run, parts: StreamParts) -> None:
        parts.tally = parts.tally or LogprobTally()

        def check(_text: str, tally: LogprobTally) -> None:
            finding = self._judge(exchange, run, tally.confidence())
            if finding is None:
                return
            if self.action == "block":
                run.note(self.label, finding, "hold")
                exchange.record.review_reason = f"guard: {self.label} low_confidence: {finding.message}"
                raise StreamBlocked(f"{self.label}: {finding.message}", code="low_confidence",
                                    error_class="guardrail")
            run.act(self.label, finding, self.action)

        parts.end_checks.append(check)
