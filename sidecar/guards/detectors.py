"""Text guards: one text in, a `Finding` or None out. The request path and `tollgate guard eval` share them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from core.redaction import find_pii
from sidecar.guards.events import Finding
from sidecar.guards.semantic import Classifier, Embedder, ExemplarClassifier

# Phrasings that are injections whatever the embedding says: overriding instructions, extracting the system
# prompt, persona jailbreaks, and chat-template control tokens smuggled into user text.
_INJECTION_PATTERNS = re.compile(
    r"\b(?:ignore|disregard|forget|override|bypass)\b[^.\n]{0,40}?"
    r"\b(?:previous|prior|above|earlier|preceding|all|your|the|these|those|system)\b[^.\n]{0,30}?"
    r"\b(?:instructions?|prompts?|rules|directions|guidelines|directives|guardrails|restrictions)\b"
    r"|\b(?:reveal|show|print|repeat|output|leak|display|dump|tell me)\b[^.\n]{0,40}?"
    r"\b(?:system|hidden|initial|secret|original)\s+(?:prompt|message|instructions?)"
    r"|\byou are now (?:an? )?(?:unrestricted|unfiltered|jailbroken|evil|free|dan)\b"
    r"|\b(?:enter|enable|activate|switch to|in|into)\s+(?:developer|god|jailbreak|dan) mode\b"
    r"|\b(?:developer|god|jailbreak|dan) mode (?:is )?(?:activated|enabled)\b|\bdo anything now\b"
    r"|\bnew (?:system )?instructions\s*:|\bsystem override\b"
    r"|<\|im_start\|>|<\|system\|>|\[/?INST\]|<<SYS>>",
    re.IGNORECASE,
)

# Words attacks use (instructions, rules, personas, secrets). A message with none of them is not compared with
# the attack exemplars: the embedding is most of a guard's cost, and most questions never need it.
_ATTACK_WORDS = re.compile(
    r"\b(?:ignor\w*|disregard\w*|forget|instruction\w*|prompt\w*|system|rules?|pretend\w*|act(?:ing)? as"
    r"|role-?play\w*|mode|reveal\w*|jailbr\w*|dan|polic\w*|restrict\w*|override|developer|admin\w*|guidelines?"
    r"|filters?|uncensored|unrestricted|obey|comply|verbatim|secrets?|confidential|password\w*|api keys?"
    r"|simulat\w*|limits?|constraints?|character|above|previous|prior|earlier|hack\w*|bypass\w*)\b",
    re.IGNORECASE,
)


class TextDetector(Protocol):
    """Inspects one text; returns why it triggers, or None."""

    def inspect(self, text: str) -> Finding | None: ...


class SizeDetector:
    def __init__(self, max_chars: int | None) -> None:
        self.max_chars = max_chars

    def inspect(self, text: str) -> Finding | None:
        if self.max_chars is not None and len(text) > self.max_chars:
            message = f"the request has {len(text)} characters of text, more than the {self.max_chars} allowed"
            return Finding("request_too_large", message, float(len(text)), float(self.max_chars))
        return None


class InjectionDetector:
    """Known injection phrasings (score 1), else the best similarity to attack exemplars.

    With `prefilter`, a text without any word attacks use scores 0 without being embedded.
    """

    def __init__(self, classifier: ExemplarClassifier | None, threshold: float, patterns: bool = True,
                 prefilter: bool = True) -> None:
        self.classifier = classifier
        self.threshold = threshold
        self.patterns = patterns
        self.prefilter = prefilter

    def needs_embedding(self, text: str) -> bool:
        if self.classifier is None or (self.patterns and _INJECTION_PATTERNS.search(text)):
            return False
        return not self.prefilter or _ATTACK_WORDS.search(text) is not None

    def score(self, text: str) -> float:
        if self.patterns and _INJECTION_PATTERNS.search(text):
            return 1.0
        if self.classifier is None or (self.prefilter and not _ATTACK_WORDS.search(text)):
            return 0.0
        return self.classifier.score(text)

    def inspect(self, text: str) -> Finding | None:
        score = self.score(text)
        if score >= self.threshold:
            return Finding("prompt_injection", "the message looks like a prompt injection", score, self.threshold)
        return None


class ScopeDetector:
    """Out of scope when the best similarity to the allowed intents stays below the threshold."""

    def __init__(self, embedder: Embedder, intents: Sequence[str], threshold: float) -> None:
        self.classifier = ExemplarClassifier(embedder, intents)
        self.threshold = threshold

    def inspect(self, text: str) -> Finding | None:
        if not text.strip():
            return None
        best = self.classifier.similarity(text)
        if best < self.threshold:
            return Finding("out_of_scope", "the message is outside what this route answers", best, self.threshold)
        return None


class PiiDetector:
    def __init__(self, kinds: Sequence[str]) -> None:
        self.kinds = tuple(kinds)

    def inspect(self, text: str) -> Finding | None:
        matches = find_pii(text, self.kinds)
        if not matches:
            return None
        kinds = sorted({match.kind for match in matches})
        return Finding("pii_detected", f"{len(matches)} PII value(s) found ({', '.join(kinds)})", float(len(matches)))


class SemanticDetector:
    """A classifier's score for a category at or above the threshold triggers, with the category as reason."""

    def __init__(self, classifier: Classifier, category: str, threshold: float) -> None:
        self.classifier = classifier
        self.category = category
        self.threshold = threshold

    def inspect(self, text: str) -> Finding | None:
        if not text.strip():
            return None
        score = float(self.classifier.score(text))
        if score >= self.threshold:
            return Finding(self.category, f"the text scored {score:.2f} for {self.category}", score, self.threshold)
        return None
