"""The guard stage: picks a request's policy and runs its checks on the request, answer and stream.

Built only when guards are configured (`GuardSettings.active`); everything expensive (the embedding model,
exemplar vectors, tokenizers, prompt schemas) is loaded here, at start-up, never per request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson

from core.config.guards import (
    AllowedParamsGuard,
    ConfidenceGuard,
    ContextLengthGuard,
    GuardPolicy,
    GuardSettings,
    InjectionGuard,
    MaxSizeGuard,
    OutputSchemaGuard,
    PiiGuard,
    ScopeGuard,
    SemanticGuard,
)
from sidecar.guards import events
from sidecar.guards.checks import (
    Check,
    ConfidenceCheck,
    ContextCheck,
    ParamsCheck,
    PiiCheck,
    Run,
    SchemaCheck,
    SizeCheck,
    StreamParts,
    TextCheck,
)
from sidecar.guards.detectors import ScopeDetector, SemanticDetector, injection_detector
from sidecar.guards.events import Counter, Finding
from sidecar.guards.semantic import Embedder, build_classifier, exemplars_for
from sidecar.guards.streams import GuardStreamFilter, LookBack
from sidecar.guards.text import reply_text, rewrite_reply, user_text
from sidecar.guards.tokens import TokenCounter, choose_counter
from sidecar.pipeline import BaseStage, Exchange, Reply, StreamFilter

log = logging.getLogger("tollgate.sidecar.guards")
_STATE = "guards"


@dataclass(eq=False)
class CompiledPolicy:
    """A policy with its checks built."""

    policy: GuardPolicy
    checks: list[Check]
    embeds: bool  # some check reads the user's message through the embedding model
    embeds_output: bool  # some check reads the answer through the embedding model
    schema: SchemaCheck | None
    streams: bool  # some check takes part in streams


class GuardStage(BaseStage):
    """Runs the first matching policy's checks (see `core.config.guards` for the settings)."""

    name = "guards"

    def __init__(self, policies: list[CompiledPolicy], settings: GuardSettings, embedder: Embedder | None,
                 count: Counter | None) -> None:
        self.policies = policies
        self.settings = settings
        self.embedder = embedder
        self.count = count
        self._chosen: dict[tuple[Any, ...], CompiledPolicy | None] = {}

    def _policy(self, exchange: Exchange) -> CompiledPolicy | None:
        record = exchange.record
        key = (exchange.payload.get("model"), record.prompt_name, record.feature)
        if key in self._chosen:
            return self._chosen[key]
        model = key[0] if isinstance(key[0], str) else None
        found = next((p for p in self.policies if p.policy.match.fits(model, key[1], key[2])), None)
        if len(self._chosen) < 10_000:  # keys come from clients: bounded
            self._chosen[key] = found
        return found

    def _act(self, exchange: Exchange, guard: str, finding: Finding, action: str) -> None:
        events.act(exchange.record, guard, finding, action, self.count)

    def _note(self, exchange: Exchange, guard: str, finding: Finding, action: str) -> None:
        events.note(exchange.record, guard, finding, action, self.count)

    async def on_request(self, exchange: Exchange) -> Reply | None:
        compiled = self._policy(exchange)
        if compiled is None:
            return None
        run = Run(exchange, self._act, self._note)
        exchange.state[_STATE] = (compiled, run)
        if compiled.embeds and self.embedder is not None:
            text = user_text(exchange.payload)
            texts = [t for check in compiled.checks if isinstance(check, TextCheck) for t in check.embedding_texts(text)]
            if texts:
                await self.embedder.aprepare(texts)
        for check in compiled.checks:
            await check.on_request(exchange, run)
        if exchange.stream and compiled.schema is not None and compiled.schema.replays(exchange):
            return await self._replay(exchange, compiled, run)
        return None

    async def on_reply(self, exchange: Exchange, reply: Reply) -> Reply:
        state = exchange.state.get(_STATE)
        if state is None or reply.sse:
            return reply
        compiled, run = state
        if run.masker is not None and run.masker.values and reply.status == 200:
            document = reply.document()
            if isinstance(document, dict) and rewrite_reply(document, run.masker.restore):
                reply.replace_document(document)
        if compiled.embeds_output and self.embedder is not None and reply.status == 200:
            await self.embedder.aprepare([reply_text(reply.document()) or ""])  # off the event loop
        for check in compiled.checks:
            reply = await check.on_reply(exchange, reply, run)
        return reply

    def stream_filter(self, exchange: Exchange) -> StreamFilter | None:
        state = exchange.state.get(_STATE)
        if state is None:
            return None
        compiled, run = state
        if not compiled.streams and (run.masker is None or not run.masker.values):
            return None
        parts = StreamParts()
        for check in compiled.checks:
            check.on_stream(exchange, run, parts)
        lookback = None
        masker = run.masker if run.masker is not None and run.masker.values else None
        if parts.redact_kinds or parts.block_kinds or masker is not None:
            kinds = sorted(parts.redact_kinds | parts.block_kinds)

            def found(text: str) -> None:
                for callback in parts.on_pii:
                    callback(text)

            lookback = LookBack(self.settings.stream_lookback_chars, kinds, bool(parts.redact_kinds), masker, found)
        if lookback is None and not parts.end_checks and parts.tally is None:
            return None
        return GuardStreamFilter(lookback, parts.end_checks, parts.tally, run.asked_logprobs)

    async def _replay(self, exchange: Exchange, compiled: CompiledPolicy, run: Run) -> Reply:
        """Answer a stream request after the whole answer passed the output checks, as SSE events."""
        assert exchange.resend is not None
        payload = {k: v for k, v in exchange.payload.items() if k not in ("stream", "stream_options")}
        original, exchange.payload = exchange.payload, payload
        exchange.record.attempts = 0  # this call is the request's first upstream attempt, not an extra one
        try:
            reply = await self.on_reply(exchange, await exchange.resend(payload))
        finally:
            exchange.payload = original
        if reply.status != 200:
            return reply
        return Reply(200, as_sse(reply.document(), original), reply.headers, sse=True)


def as_sse(document: Any, request: dict[str, Any]) -> bytes:
    """A complete chat or completion answer as the events a stream of it would have carried."""
    base = {k: v for k, v in document.items() if k not in ("choices", "usage")}
    chat = document.get("object") != "text_completion"
    base["object"] = "chat.completion.chunk" if chat else "text_completion"
    events: list[bytes] = []
    for choice in document.get("choices") or ():
        index = choice.get("index", 0)
        if chat:
            message = choice.get("message") or {}
            delta = {"role": "assistant", "content": message.get("content") or ""}
            first = {"index": index, "delta": delta, "logprobs": None, "finish_reason": None}
            last = {"index": index, "delta": {}, "logprobs": None, "finish_reason": choice.get("finish_reason")}
        else:
            first = {"index": index, "text": choice.get("text") or "", "logprobs": None, "finish_reason": None}
            last = {"index": index, "text": "", "logprobs": None, "finish_reason": choice.get("finish_reason")}
        events.append(_event({**base, "choices": [first]}))
        events.append(_event({**base, "choices": [last]}))
    options = request.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage") and document.get("usage"):
        events.append(_event({**base, "choices": [], "usage": document["usage"]}))
    events.append(b"data: [DONE]\n\n")
    return b"".join(events)


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def build_guard_stage(runtime: Any) -> GuardStage:
    """The stage for `runtime.settings.guards`, with models and tokenizers loaded now."""
    settings: GuardSettings = runtime.settings.guards
    policies = settings.all_policies()
    embedder = Embedder() if any(_needs_embedder(p) for p in policies) else None
    prompt_schemas = _prompt_schemas(settings) if any(_has(p, OutputSchemaGuard) for p in policies) else {}
    counters = _Counters(runtime)
    compiled = [_compile(p, embedder, counters, prompt_schemas) for p in policies]
    metrics = getattr(runtime, "metrics", None)
    count = getattr(metrics, "guard_triggered", None)
    return GuardStage(compiled, settings, embedder, count)


def _has(policy: GuardPolicy, kind: type) -> bool:
    return any(isinstance(spec, kind) for spec in policy.guards)


def _needs_embedder(policy: GuardPolicy) -> bool:
    return any(
        isinstance(spec, ScopeGuard | InjectionGuard) or (isinstance(spec, SemanticGuard) and spec.classifier == "embedding")
        for spec in policy.guards
    )


def compile_check(spec: Any, embedder: Embedder | None, counters: _Counters | None,
                  prompt_schemas: dict[str, Any], fallback_model: str | None = None) -> Check:
    """One guard setting as a check (also used by `tollgate guard eval`)."""
    if isinstance(spec, MaxSizeGuard):
        return SizeCheck(spec)
    if isinstance(spec, AllowedParamsGuard):
        return ParamsCheck(spec)
    if isinstance(spec, ContextLengthGuard):
        return ContextCheck(spec, counters.for_setting(spec.tokenizer) if counters is not None else {})
    if isinstance(spec, InjectionGuard):
        return TextCheck(spec.label, spec.action, injection_detector(spec, embedder), "input")
    if isinstance(spec, ScopeGuard):
        assert embedder is not None
        return TextCheck(spec.label, spec.action, ScopeDetector(embedder, spec.intents, spec.threshold), "input")
    if isinstance(spec, PiiGuard):
        return PiiCheck(spec)
    if isinstance(spec, SemanticGuard):
        classifier = build_classifier(spec.classifier, spec.category, exemplars_for(spec.category, spec.exemplars),
                                      embedder)
        return TextCheck(spec.label, spec.action, SemanticDetector(classifier, spec.category, spec.threshold),
                         spec.where)
    if isinstance(spec, OutputSchemaGuard):
        return SchemaCheck(spec, fallback_model, prompt_schemas)
    if isinstance(spec, ConfidenceGuard):
        return ConfidenceCheck(spec)
    raise TypeError(f"unknown guard setting {type(spec).__name__}")


def _compile(policy: GuardPolicy, embedder: Embedder | None, counters: _Counters,
             prompt_schemas: dict[str, Any]) -> CompiledPolicy:
    checks = [compile_check(spec, embedder, counters, prompt_schemas, policy.fallback_model) for spec in policy.guards]
    schema = next((c for c in checks if isinstance(c, SchemaCheck)), None)
    streams = any(
        isinstance(c, SchemaCheck | ConfidenceCheck)
        or (isinstance(c, PiiCheck) and c.output)
        or (isinstance(c, TextCheck) and c.output)
        for c in checks
    )
    embeds = any(isinstance(c, TextCheck) and c.input for c in checks) and embedder is not None
    embeds_output = any(isinstance(c, TextCheck) and c.output for c in checks) and embedder is not None
    return CompiledPolicy(policy, checks, embeds, embeds_output, schema, streams)


class _Counters:
    """Token counters per tokenizer setting and served model, built at start-up (once per setting)."""

    def __init__(self, runtime: Any) -> None:
        self._runtime = runtime
        self._built: dict[str, dict[str, TokenCounter]] = {}

    def for_setting(self, setting: str) -> dict[str, TokenCounter]:
        if setting not in self._built:
            routes = getattr(self._runtime, "routes", None) or {}
            self._built[setting] = {name: choose_counter(setting, name, self._runtime) for name in routes}
        return self._built[setting]


def _prompt_schemas(settings: GuardSettings) -> dict[str, Any]:
    """Output schemas of the prompt files, by prompt name (none when the folder does not exist)."""
    if not settings.prompts_dir.is_dir():
        return {}
    from core.prompts.registry import PromptRegistry

    registry = PromptRegistry(settings.prompts_dir)
    return {prompt.name: prompt.output_schema for prompt in registry.list() if prompt.output_schema}
