"""Text guards: one text in, a `Finding` or None out. The request path and `tollgate guard eval` share them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from core.errors import ConfigError
from core.redaction import find_pii
from sidecar.guards.events import Finding
from sidecar.guards.injection_features import normalise, read
from sidecar.guards.injection_model import Embed, InjectionModel, load_model, score_texts
from sidecar.guards.semantic import Classifier, Embedder, ExemplarClassifier, exemplars_for

if TYPE_CHECKING:
    from core.config.guards import InjectionGuard

EXEMPLAR_THRESHOLD = 0.55

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


class TrainedInjectionDetector:
    """Known injection phrasings (score 1), else the trained model's probability that the text is an injection.

    Every non-empty text is embedded (with its decoded readings): attacks in other languages or encodings use
    none of the English words the exemplar method's prefilter looks for.
    """

    def __init__(self, embed: Embed, model: InjectionModel, threshold: float | None = None,
                 patterns: bool = True) -> None:
        self.embed = embed
        self.model = model
        self.threshold = model.threshold if threshold is None else threshold
        self.patterns = patterns

    def needs_embedding(self, text: str) -> bool:
        return bool(text.strip()) and not (self.patterns and _INJECTION_PATTERNS.search(normalise(text)))

    def embedding_texts(self, text: str) -> tuple[str, ...]:
        """What `score` embeds: the normalised text and its decoded readings."""
        return read(text).all

    def score(self, text: str) -> float:
        if not text.strip():
            return 0.0
        if self.patterns and _INJECTION_PATTERNS.search(normalise(text)):
            return 1.0
        return float(score_texts(self.model, [text], self.embed)[0])

    def inspect(self, text: str) -> Finding | None:
        score = self.score(text)
        if score >= self.threshold:
            return Finding("prompt_injection", "the message looks like a prompt injection", score, self.threshold)
        return None


def injection_detector(spec: InjectionGuard, embedder: Embedder | None) -> TextDetector:
    """The detector an injection guard's settings ask for (`method: trained` by default)."""
    if spec.method == "exemplars":
        attacks = ExemplarClassifier(embedder, exemplars_for("injection", spec.exemplars)) if embedder else None
        threshold = EXEMPLAR_THRESHOLD if spec.threshold is None else spec.threshold
        return InjectionDetector(attacks, threshold, spec.patterns, spec.prefilter)
    if embedder is None:
        raise ConfigError("the trained injection detector needs the embedding model")
    model = load_model(Path(spec.model) if spec.model else None)
    return TrainedInjectionDetector(embedder.embed, model, spec.threshold, spec.patterns)


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
