"""Guardrails in the sidecar: the ordered guard pipelines per model, prompt or route.

```yaml
guards:
  policies:
    - match: {models: [support-bot]}        # also prompts: [...], routes: [...] (the feature tag)
      fallback_model: big-model             # used by output_schema when routing set no escalation target
      guards:
        - {type: max_size, max_chars: 20000}
        - {type: context_length, max_tokens: 4096, action: redact}   # redact = trim the oldest turns
        - {type: injection, threshold: 0.6}
        - {type: scope, intents: ["billing questions", "delivery status"], threshold: 0.3, action: flag}
        - {type: pii, where: input, action: redact, restore: true}   # mask before the upstream, restore after
        - {type: output_schema, retries: 1, fallback_response: '{"answer": null}'}
        - {type: confidence, min_confidence: 0.6, action: flag}
```
Each guard has an `action`: `block` (refuse with an OpenAI-shaped 4xx naming the reason), `redact` (change
the text and go on), `flag` (go on, and queue the request for review) or `log` (record the trigger only).
The first policy whose `match` fits a request applies; `defaults: true` adds a policy matching every request
with the default guards (`DEFAULT_GUARDS`), after the configured ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from core.config.base import Section

GuardAction = Literal["block", "redact", "flag", "log"]
Where = Literal["input", "output", "both"]


class _Guard(Section):
    """Fields every guard has."""

    name: str | None = Field(default=None, description="Label in events and metrics; default: the type")
    action: GuardAction = "block"

    allowed_actions: ClassVar[frozenset[str]] = frozenset({"block", "flag", "log"})

    @model_validator(mode="after")
    def _known_action(self) -> _Guard:
        if self.action not in self.allowed_actions:
            allowed = ", ".join(sorted(self.allowed_actions))
            raise ValueError(f"guard {self.label}: action {self.action!r} is not supported (use {allowed})")
        return self

    @property
    def label(self) -> str:
        return self.name or str(self.type)  # type: ignore[attr-defined]  # every subclass has `type`


class MaxSizeGuard(_Guard):
    """The request's text may not exceed a number of characters or messages."""

    type: Literal["max_size"]
    max_chars: int | None = Field(default=100_000, gt=0)
    max_messages: int | None = Field(default=None, gt=0)


class ContextLengthGuard(_Guard):
    """The prompt must fit the model's context; `redact` trims the oldest non-system turns instead."""

    type: Literal["context_length"]
    max_tokens: int = Field(gt=0)
    reserve_output: bool = Field(default=True, description="Count the request's max_tokens as used too")
    tokenizer: str = Field(
        default="auto",
        description="auto | tiktoken:<model or encoding> | server:<base url> | chars:<chars per token>",
    )
    allowed_actions: ClassVar[frozenset[str]] = frozenset({"block", "redact", "flag", "log"})


class AllowedParamsGuard(_Guard):
    """Only the listed request fields may be sent (e.g. refuse `logit_bias`, `n` or `tools`)."""

    type: Literal["allowed_params"]
    allowed: list[str] = Field(min_length=1)


class InjectionGuard(_Guard):
    """Prompt-injection detection: known patterns, plus a trained classifier (default) or exemplar similarity."""

    type: Literal["injection"]
    method: Literal["trained", "exemplars"] = "trained"
    threshold: float | None = Field(
        default=None, ge=0, le=1, description="Default: the trained model's own; 0.55 for exemplars"
    )
    model: str | None = Field(default=None, description="Weights from `tollgate guard train` (default: shipped)")
    exemplars: list[str] = Field(default_factory=list, description="method exemplars: added to the bundled ones")
    patterns: bool = True
    prefilter: bool = Field(default=True, description="method exemplars: embed only texts using attack words")


class ScopeGuard(_Guard):
    """Out-of-scope detection: the user's message must resemble one of the route's allowed intents."""

    type: Literal["scope"]
    intents: list[str] = Field(min_length=1)
    threshold: float = Field(default=0.3, ge=-1, le=1, description="Below this best similarity: out of scope")


class PiiGuard(_Guard):
    """PII in the input (before the upstream) or the output (also streamed, with a look-back buffer)."""

    type: Literal["pii"]
    where: Where = "input"
    kinds: list[str] = Field(default_factory=lambda: ["email", "phone", "card", "iban", "national_id", "ip"])
    restore: bool = Field(default=False, description="input+redact: mask with tokens, put values back after")
    allowed_actions: ClassVar[frozenset[str]] = frozenset({"block", "redact", "flag", "log"})

    @model_validator(mode="after")
    def _known_kinds(self) -> PiiGuard:
        from core.redaction import PII_KINDS

        unknown = sorted(set(self.kinds) - set(PII_KINDS))
        if unknown:
            raise ValueError(f"guard {self.label}: unknown PII kind(s) {unknown} (known: {list(PII_KINDS)})")
        return self


class SemanticGuard(_Guard):
    """A classifier's score for a category (toxicity, policy, off_topic, ...) against a threshold."""

    type: Literal["semantic"]
    category: str = "toxicity"
    where: Where = "output"
    threshold: float = Field(default=0.6, ge=-1, le=1)
    exemplars: list[str] = Field(default_factory=list, description="Examples of the category (added to bundled)")
    classifier: str = Field(default="embedding", description="embedding, or module:factory of a Classifier")


class OutputSchemaGuard(_Guard):
    """Structured output checked against a schema, with the fallback chain on failure.

    The schema is this guard's `schema`, else the request's `response_format` json_schema, else the output
    schema of the prompt named by the request's prompt tag. Chain: `retries` re-asks with the validation
    errors appended, then the fallback model, then `fallback_response`, then 422 and a review item.
    """

    type: Literal["output_schema"]
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    retries: int = Field(default=1, ge=0, le=5)
    fallback_model: str | None = None
    fallback_response: str | None = None
    stream: Literal["replay", "end_check"] = Field(
        default="replay",
        description="replay: a stream request is answered after validation, so the chain applies; "
        "end_check: streamed as it comes, a failing answer ends with an error event instead of [DONE]",
    )


class ConfidenceGuard(_Guard):
    """Confidence from token logprobs (requested when the client did not); low confidence is flagged or held.

    `block` holds the answer: 422 and a review item instead of serving it.
    """

    type: Literal["confidence"]
    min_confidence: float = Field(default=0.5, ge=0, le=1)
    request_logprobs: bool = True


GuardSpec = Annotated[
    MaxSizeGuard
    | ContextLengthGuard
    | AllowedParamsGuard
    | InjectionGuard
    | ScopeGuard
    | PiiGuard
    | SemanticGuard
    | OutputSchemaGuard
    | ConfidenceGuard,
    Field(discriminator="type"),
]


class PolicyMatch(Section):
    """Which requests a policy applies to; an empty list matches anything."""

    models: list[str] = Field(default_factory=list)
    prompts: list[str] = Field(default_factory=list)
    routes: list[str] = Field(default_factory=list, description="Feature tags (x-tollgate-feature)")

    def fits(self, model: str | None, prompt: str | None, route: str | None) -> bool:
        return (
            (not self.models or model in self.models)
            and (not self.prompts or prompt in self.prompts)
            and (not self.routes or route in self.routes)
        )


class GuardPolicy(Section):
    """An ordered list of guards for the requests `match` selects."""

    match: PolicyMatch = PolicyMatch()
    guards: list[GuardSpec] = Field(min_length=1)
    fallback_model: str | None = None


DEFAULT_GUARDS: tuple[dict[str, Any], ...] = (
    {"type": "max_size", "max_chars": 100_000},
    {"type": "injection"},
    {"type": "pii", "where": "input", "action": "log"},
    {"type": "pii", "where": "output", "action": "redact"},
)
"""The default pipeline: size limit, injection block, PII noted in requests and redacted from answers."""


class GuardSettings(Section):
    """Guardrails in the sidecar: the ordered guard pipelines per model, prompt or route."""

    enabled: bool = True
    defaults: bool = Field(default=False, description="Apply DEFAULT_GUARDS to requests no policy matches")
    policies: list[GuardPolicy] = Field(default_factory=list)
    prompts_dir: Path = Field(default=Path("prompts"), description="Where prompt files (output schemas) live")
    stream_lookback_chars: int = Field(default=96, ge=16, le=4096)

    @property
    def active(self) -> bool:
        """True when any request can meet a guard (otherwise the sidecar builds no guard stage)."""
        return self.enabled and (self.defaults or bool(self.policies))

    def all_policies(self) -> list[GuardPolicy]:
        """The configured policies, then the default one when `defaults` is on."""
        policies = list(self.policies)
        if self.defaults:
            policies.append(GuardPolicy.model_validate({"guards": list(DEFAULT_GUARDS)}))
        return policies
