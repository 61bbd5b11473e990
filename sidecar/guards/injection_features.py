"""Normalisation and cheap lexical features for the trained injection detector.

A text is first normalised (NFKC, zero-width characters removed, Latin look-alikes in mixed-script words mapped
back to Latin). Attacks that hide their words get extra *readings*: base64 runs decoded, leetspeak and
letter-by-letter spelling undone. The detector scores every reading and keeps the highest score, so an encoded
attack is judged by what it says, and a booking reference that only looks encoded is judged by what it is.

The lexical features count the markers attacks use in any language: chat-template and markup escapes, fake
"system"/"developer" turns, override verbs near instruction nouns, references to the prompt itself, personas,
output hijacks, payload assembly, and the traces obfuscation leaves (zero-width characters, mixed scripts,
digits inside words).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import unicodedata
from dataclasses import dataclass

import numpy as np

_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]")
# Cyrillic and Greek letters drawn like Latin ones; mapped only inside words that also use Latin letters.
_CONFUSABLES = str.maketrans({
    "\u0430": "a", "\u0435": "e", "\u043e": "o", "\u0440": "p", "\u0441": "c", "\u0445": "x", "\u0443": "y",
    "\u0456": "i", "\u0458": "j", "\u0455": "s", "\u0410": "A", "\u0415": "E", "\u041e": "O", "\u0420": "P",
    "\u0421": "C", "\u0425": "X", "\u03bf": "o", "\u03b1": "a", "\u03b5": "e", "\u0399": "I", "\u039f": "O",
})
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"})
_WORD = re.compile(r"\S+")
_LATIN = re.compile(r"[A-Za-z]")
_LOOKALIKE = re.compile("[\u0400-\u04ff\u0370-\u03ff]")
_BASE64_RUN = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{16,}={0,2}(?![A-Za-z0-9+/])")
_LEET_WORD = re.compile(r"\b(?=[a-z0-9@$!]*[a-z])(?=[a-z0-9@$!]*[0-9@$!])[a-z0-9@$!]{3,}\b", re.IGNORECASE)
_MAX_DECODED = 3
_SPELLED = re.compile(r"\b(?:[a-z][-_.* ]){3,}[a-z]\b", re.IGNORECASE)

_OVERRIDE = (r"ignor\w*|disregard\w*|forget\w*|overrid\w*|bypass\w*|cancel\w*|revok\w*|discard\w*|set aside|skip"
             r"|olvid\w*|oubli\w*|vergiss\w*|esque[cç]\w*|dimentic\w*|negeer\w*|zignoruj\w*|игнорир\w*|yok say"
             r"|忽略|忘记|無視|무시")
_RULES = (r"instruct\w*|rules?|guidelines?|prompt\w*|directives?|polic\w*|restrictions?|filters?|programming"
          r"|configuration|setup|orders|instrucci\w*|reglas|consignes|r[eè]gles|anweisung\w*|regeln|instru[cç]\w*"
          r"|regras|istruzion\w*|regole|instructies|instrukcj\w*|инструкц\w*|指令|规则|指示|지시|talimat\w*")
_PATTERNS: dict[str, str] = {
    "override_near_rules": rf"(?:{_OVERRIDE})[^.\n]{{0,60}}?(?:{_RULES})|(?:{_RULES})[^.\n]{{0,30}}?(?:{_OVERRIDE})",
    "override_verb": rf"\b(?:{_OVERRIDE})",
    "rules_noun": rf"(?:{_RULES})",
    "prompt_reference": r"system ?(?:prompt|message)|your (?:prompt|instructions|rules|setup|configuration)"
                        r"|(?:initial|hidden|original|secret|confidential|internal) (?:prompt|instructions|message|text|note)"
                        r"|verbatim|word for word|mot pour mot|wortw[öo]rtlich|palavra por palavra|parola per parola"
                        r"|逐字|before (?:this|my first|the user)|(?:text|words) above",
    "chat_markup": r"<\|[a-z_]+\|>|\[/?inst\]|<</?sys>>|</?s>|<\|endoftext\|>",
    "closing_tag": r"</[a-z_][\w-]*>|\]\]>|-->|<!--",
    "fake_turn": r"(?:^|\n|\\n)\s*[#*\[(]*\s*(?:system|developer|admin\w*|assistant|human|user|internal)\b[^\n:]{0,20}[:\]]"
                 r"|\"role\"\s*:\s*\"(?:system|developer)\"",
    "fence_or_separator": r"```|\"\"\"|^-{3,}|^={3,}|^#{3,}|%%%|\bend of (?:user|conversation|input|customer)",
    "persona": r"you are now|you're now|from now on|pretend|act as|act like|role-?play|in character|stay in character"
               r"|persona|\bdan\b|jailbr\w*|developer mode|god mode|unrestricted|unfiltered|uncensored|no (?:rules|limits"
               r"|restrictions|filters|guidelines)|without (?:any )?(?:restrictions|rules|limits|filters|censorship)",
    "harmful_task": r"bomb|explosive|malware|ransomware|keylogger|botnet|phishing|methamphetamine|poison|weapon|gun\b"
                    r"|launder|smuggl\w*|forg(?:e|ed) |fake passport|steal\w*|stolen|hack\w*|exploit|dox\w*|stalk",
    "addresses_the_ai": r"\b(?:ai|assistant|language model|chatbot|bot|llm|chatgpt|kí|ia)\b[^\n]{0,12}[:,]"
                        r"|(?:note|message|instruction)s? (?:to|for) (?:the |any )?(?:ai|assistant|language model|model)"
                        r"|if you(?:'re| are) an? (?:ai|language model)|to (?:the|any) ai\b|an die ki|à l'assistant",
    "output_hijack": r"(?:only|exactly) (?:output|reply|respond|print|return)|nothing else|every (?:reply|answer|response|message)"
                     r"|all (?:future|further) (?:replies|responses)|!\[[^\]]*\]\(https?://|<script|onerror=|https?://\S*(?:evil|attacker|phish|scam|collect|grab|track)",
    "authority_claim": r"i am (?:your|the) (?:developer|admin\w*|operator|ceo)|admin override|system override"
                       r"|(?:authori[sz]ed|approved|permission) to|pre-approved|root privileges|maintenance mode",
    "assembly": r"concatenat\w*|combine\w*|\bjoin\w*|merge\w*|\bpart [12]\b|piece \w+|\bfragments?\b|\+ ?['\"a-z]"
                r"|\b[a-z]\w{0,5} ?= ?['\"\[]|fill in the blanks|first letter of each|backwards|rot13|decode",
}
_COMPILED = {name: re.compile(pattern, re.IGNORECASE | re.MULTILINE) for name, pattern in _PATTERNS.items()}
FEATURE_NAMES: tuple[str, ...] = (
    *_PATTERNS, "zero_width", "mixed_script_words", "nfkc_changed", "base64_runs", "leet_words", "spelled_out",
    "log_length",
)


@dataclass(frozen=True, slots=True)
class Readings:
    """A text as normalised, plus the decoded or de-obfuscated readings worth scoring too."""

    text: str
    extra: tuple[str, ...]
    features: np.ndarray

    @property
    def all(self) -> tuple[str, ...]:
        return (self.text, *self.extra)


def normalise(text: str) -> str:
    """NFKC, zero-width characters removed, Latin look-alikes in mixed-script words mapped to Latin."""
    folded = _ZERO_WIDTH.sub("", unicodedata.normalize("NFKC", text))
    return _WORD.sub(_unmix, folded)


def _unmix(match: re.Match[str]) -> str:
    word = match.group(0)
    if _LATIN.search(word) and _LOOKALIKE.search(word):
        return word.translate(_CONFUSABLES)
    return word


def decoded_runs(text: str) -> list[str]:
    """Base64 runs of `text` that decode to mostly printable UTF-8 text."""
    found = []
    for run in _BASE64_RUN.findall(text):
        padded = run + "=" * (-len(run) % 4)
        try:
            decoded = base64.b64decode(padded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
        printable = sum(ch.isprintable() for ch in decoded)
        if len(decoded) >= 6 and printable >= 0.95 * len(decoded) and re.search(r"[A-Za-z]{3}", decoded):
            found.append(decoded)
    return found


def _deleet(text: str) -> str:
    return _LEET_WORD.sub(lambda m: m.group(0).translate(_LEET), text)


def _despell(text: str) -> str:
    return _SPELLED.sub(lambda m: re.sub(r"[-_.* ]", "", m.group(0)), text)


def read(text: str) -> Readings:
    """The normalised text, its extra readings and its lexical features."""
    clean = normalise(text)
    extra: list[str] = [*decoded_runs(clean)[:_MAX_DECODED]]  # bounded: each reading costs an embedding
    if _LEET_WORD.search(clean):
        extra.append(_deleet(clean))
    if _SPELLED.search(clean):
        extra.append(_despell(clean))
    extra = [reading for reading in dict.fromkeys(extra) if reading != clean]
    return Readings(clean, tuple(extra), lexical_features(text, clean))


def lexical_features(raw: str, clean: str) -> np.ndarray:
    """Counts of the markers in `FEATURE_NAMES` order (log1p-scaled), computed on the normalised text."""
    counts = [len(pattern.findall(clean)) for pattern in _COMPILED.values()]
    words = _WORD.findall(unicodedata.normalize("NFKC", raw))
    counts += [
        len(_ZERO_WIDTH.findall(raw)),
        sum(1 for word in words if _LATIN.search(word) and _LOOKALIKE.search(word)),
        int(unicodedata.normalize("NFKC", raw) != raw),
        len(decoded_runs(clean)),
        len(_LEET_WORD.findall(clean)),
        len(_SPELLED.findall(clean)),
    ]
    values = [math.log1p(count) for count in counts]
    values.append(math.log1p(len(clean)) / 10.0)
    return np.asarray(values, dtype=np.float32)
