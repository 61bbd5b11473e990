"""Routing in the sidecar: model-choice rules, escalation targets, load-aware balancing, prefix affinity, health.

```yaml
routing:
  rules:                          # the first rule whose conditions all hold picks the model
    - name: long-inputs
      when: {min_input_tokens: 3000}
      model: big-context
    - name: support-feature
      when: {feature: [support], models: [auto]}
      model: cheap
    - name: hard-questions
      when: {min_complexity: 0.6}
      model: frontier
      escalate_to: frontier-xl
  escalation: {cheap: frontier}   # model -> stronger model for guard or parse failures
  affinity: {enabled: true, prefix_chars: 2048, min_prefix_chars: 256, max_load_gap: 4}
  health: {enabled: true, interval_s: 2, unhealthy_after: 2, healthy_after: 2}
```

Deployments declared `kind: vllm` are polled on their Prometheus `/metrics` (running and waiting requests,
KV-cache usage) and health-checked on `/health` whatever `health.enabled` says.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from core.config.base import Section


class RuleConditions(Section):
    """Conditions of one rule; every condition given must hold (an empty `when` always matches)."""

    models: list[str] = Field(default_factory=list, description="Requested model names the rule applies to")
    feature: list[str] = Field(default_factory=list, description="Feature tags (x-tollgate-feature)")
    prompt: list[str] = Field(
        default_factory=list, description="Prompt names (x-tollgate-prompt), shell-style patterns such as 'booking-*'"
    )
    text_matches: str | None = Field(default=None, description="Regular expression searched in the user's messages")
    min_input_tokens: int | None = Field(default=None, ge=0, description="Estimated input tokens at least this")
    max_input_tokens: int | None = Field(default=None, ge=0, description="Estimated input tokens at most this")
    min_complexity: float | None = Field(default=None, ge=0, le=1, description="Complexity score at least this")
    max_complexity: float | None = Field(default=None, ge=0, le=1, description="Complexity score below this")

    @field_validator("text_matches")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from exc
        return value


class RoutingRule(Section):
    """Send requests matching `when` to `model` (a public model name of this sidecar)."""

    name: str = Field(min_length=1)
    when: RuleConditions = RuleConditions()
    model: str = Field(min_length=1)
    escalate_to: str | None = Field(default=None, description="Stronger model for this rule's requests")


class ComplexitySettings(Section):
    """The offline complexity classifier: a logistic score over cheap text features (see docs/routing.md)."""

    keywords: list[str] = Field(
        default_factory=lambda: [
            "explain why", "step by step", "prove", "derive", "analyse", "analyze", "compare", "trade-off",
            "tradeoff", "design", "architecture", "optimi", "debug", "refactor", "algorithm", "complexity",
            "evaluate", "justify", "reason", "plan",
        ],
        description="Phrases (lower case) that suggest a request needs reasoning",
    )
    bias: float = -2.2
    keyword_weight: float = 0.9
    length_weight: float = 0.6
    question_weight: float = 0.35
    code_weight: float = 1.0
    constraint_weight: float = 0.25


class AffinitySettings(Section):
    """Prefix affinity: requests sharing a long prompt prefix go to the same replica (its prefix cache)."""

    enabled: bool = False
    models: list[str] = Field(default_factory=list, description="Models it applies to; empty = every model")
    prefix_chars: int = Field(default=2048, ge=16, description="Characters of the prompt that form the key")
    min_prefix_chars: int = Field(default=256, ge=0, description="Shorter prompts are balanced by load only")
    max_load_gap: float = Field(
        default=4.0, ge=0, description="Leave the home replica when its load exceeds the least loaded by more"
    )


class LoadSettings(Section):
    """Load-aware balancing from vLLM's Prometheus metrics (deployments with `kind: vllm`)."""

    metrics_interval_s: float = Field(default=1.0, gt=0)
    metrics_timeout_s: float = Field(default=1.0, gt=0)
    stale_after_s: float = Field(default=5.0, gt=0, description="Older samples are ignored (load = own requests)")
    waiting_weight: float = Field(default=1.0, ge=0, description="Extra load per request waiting in vLLM's queue")
    kv_cache_weight: float = Field(default=8.0, ge=0, description="Load added as KV-cache usage nears full")
    kv_cache_threshold: float = Field(default=0.8, ge=0, le=1, description="KV-cache usage where that starts")


class HealthSettings(Section):
    """Health checks that take a replica out of rotation and back."""

    enabled: bool = Field(default=False, description="Check every openai-compatible deployment (vLLM ones always)")
    path: str = Field(default="/health", description="Path under the server root (base_url without /v1)")
    interval_s: float = Field(default=2.0, gt=0)
    timeout_s: float = Field(default=1.0, gt=0)
    unhealthy_after: int = Field(default=2, ge=1, description="Consecutive failures that take a replica out")
    healthy_after: int = Field(default=2, ge=1, description="Consecutive successes that bring it back")


class RoutingSettings(Section):
    """Routing rules, escalation targets, load-aware balancing, prefix affinity and health checks."""

    rules: list[RoutingRule] = Field(default_factory=list)
    escalation: dict[str, str] = Field(
        default_factory=dict, description="Model -> stronger model to retry with on guard or parse failure"
    )
    complexity: ComplexitySettings = ComplexitySettings()
    affinity: AffinitySettings = AffinitySettings()
    load: LoadSettings = LoadSettings()
    health: HealthSettings = HealthSettings()

    @model_validator(mode="after")
    def _unique_rule_names(self) -> RoutingSettings:
        names = [rule.name for rule in self.rules]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"rule names must be unique: {', '.join(duplicates)}")
        return self

    @property
    def has_stage(self) -> bool:
        """True when requests need the routing stage (rules or escalation targets)."""
        return bool(self.rules or self.escalation)
