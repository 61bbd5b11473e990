"""Routing rules compiled from settings, and the facts about a request they are matched against.

Facts that cost something (the request's text, its estimated size, its complexity score) are computed once
per request and only when a rule asks for them. A match explains itself in one line, which is what the
traffic record's `route_reason` keeps.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Any

from core.config.routing import RoutingRule
from sidecar.request_text import message_text, request_texts
from sidecar.routing.complexity import ComplexityClassifier, estimate_tokens
from sidecar.traffic.record import RawTraffic


@dataclass(slots=True)
class RequestFacts:
    """What rules look at, filled lazily from the payload and the record."""

    model: str
    payload: dict[str, Any]
    record: RawTraffic
    classifier: ComplexityClassifier
    _text: str | None = None
    _tokens: int | None = None
    _complexity: float | None = None

    @property
    def text(self) -> str:
        """The user's text: user messages of a chat, the prompt of a completion, the input of embeddings."""
        if self._text is None:
            self._text = request_text(self.payload)
        return self._text

    @property
    def input_tokens(self) -> int:
        if self._tokens is None:
            self._tokens = estimate_tokens(all_text(self.payload))
        return self._tokens

    @property
    def complexity(self) -> float:
        if self._complexity is None:
            self._complexity = self.classifier.score(self.text)
        return self._complexity


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """One rule ready to match; `matches` returns the reason it matched, or None."""

    name: str
    model: str
    escalate_to: str | None
    models: frozenset[str] = frozenset()
    features: frozenset[str] = frozenset()
    prompts: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None
    min_tokens: int | None = None
    max_tokens: int | None = None
    min_complexity: float | None = None
    max_complexity: float | None = None

    @classmethod
    def from_settings(cls, rule: RoutingRule) -> CompiledRule:
        when = rule.when
        return cls(
            name=rule.name,
            model=rule.model,
            escalate_to=rule.escalate_to,
            models=frozenset(when.models),
            features=frozenset(when.feature),
            prompts=tuple(when.prompt),
            pattern=re.compile(when.text_matches) if when.text_matches is not None else None,
            min_tokens=when.min_input_tokens,
            max_tokens=when.max_input_tokens,
            min_complexity=when.min_complexity,
            max_complexity=when.max_complexity,
        )

    def matches(self, facts: RequestFacts) -> str | None:
        """Why the rule applies (`feature=support, input_tokens=3400>=3000`), or None when it does not."""
        why: list[str] = []
        if self.models:
            if facts.model not in self.models:
                return None
            why.append(f"model={facts.model}")
        if self.features:
            feature = facts.record.feature
            if feature not in self.features:
                return None
            why.append(f"feature={feature}")
        if self.prompts:
            prompt = facts.record.prompt_name
            if prompt is None or not any(fnmatch.fnmatchcase(prompt, p) for p in self.prompts):
                return None
            why.append(f"prompt={prompt}")
        if self.pattern is not None:
            found = self.pattern.search(facts.text)
            if found is None:
                return None
            why.append(f"text~{found.group(0)[:40]!r}")
        if self.min_tokens is not None or self.max_tokens is not None:
            tokens = facts.input_tokens
            if self.min_tokens is not None and tokens < self.min_tokens:
                return None
            if self.max_tokens is not None and tokens > self.max_tokens:
                return None
            why.append(_bounds("input_tokens", tokens, self.min_tokens, self.max_tokens))
        if self.min_complexity is not None or self.max_complexity is not None:
            score = facts.complexity
            if self.min_complexity is not None and score < self.min_complexity:
                return None
            if self.max_complexity is not None and score >= self.max_complexity:
                return None
            why.append(_bounds("complexity", round(score, 2), self.min_complexity, self.max_complexity, upper="<"))
        return ", ".join(why) or "always"


def _bounds(name: str, value: float, low: float | None, high: float | None, upper: str = "<=") -> str:
    parts = [f"{name}={value}"]
    if low is not None:
        parts.append(f">={low}")
    if high is not None:
        parts.append(f"{upper}{high}")
    return "".join(parts)


def request_text(payload: dict[str, Any]) -> str:
    """The text the user wrote: user messages (chat), the prompt (completions), the input (embeddings)."""
    messages = payload.get("messages")
    if isinstance(messages, list):
        return "\n".join(
            message_text(m.get("content")) for m in messages if isinstance(m, dict) and m.get("role") == "user"
        )
    return all_text(payload)


def all_text(payload: dict[str, Any]) -> str:
    """Every text part of the request (system and earlier turns included): what the model reads."""
    return "\n".join(request_texts(payload))
