"""Scorers that compare the output text with expected strings: exact, normalised, substring, regex."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from harness.results import LLMResult, Score
from harness.scorers.registry import outcome, scorer

_WHITESPACE = re.compile(r"\s+")


@lru_cache(maxsize=8192)
def normalise_text(text: str) -> str:
    """Compare-friendly form of a text: NFKC, casefolded, punctuation dropped, whitespace collapsed.

    "  Hello,  WORLD! " and "hello world" both become "hello world"; fullwidth letters fold to ASCII (NFKC).
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    # Punctuation becomes a space, not nothing, so "New-York" and "new york" agree.
    spaced = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in folded)
    return _WHITESPACE.sub(" ", spaced).strip()


def _alternatives(expected: str | Sequence[str]) -> list[str]:
    return [expected] if isinstance(expected, str) else list(expected)


def check_expected_texts(expected: Any, **_: Any) -> None:
    """Reject an `expected` that is not a string or a non-empty list of strings (a `check` for @scorer)."""
    items = [expected] if isinstance(expected, str) else expected
    if not isinstance(items, list | tuple) or not items or not all(isinstance(e, str) for e in items):
        raise ValueError(f"expected must be a string or a non-empty list of strings, got {expected!r}")


def _first_difference(left: str, right: str) -> int:
    for index, (a, b) in enumerate(zip(left, right, strict=False)):
        if a != b:
            return index
    return min(len(left), len(right))


def _match(result: LLMResult, expected: str | Sequence[str], normalise: bool) -> Score:
    text = normalise_text(result.text) if normalise else result.text
    options = [normalise_text(e) if normalise else e for e in _alternatives(expected)]
    if text in options:
        return outcome(1.0)
    return outcome(0.0, first_difference=_first_difference(text, options[0]))


@scorer(check=check_expected_texts)
def exact_match(result: LLMResult, expected: str | Sequence[str], normalise: bool = False) -> Score:
    """1.0 when the output equals `expected` (or one of a list of alternatives), else 0.0.

    Comparison is character for character; `normalise=True` compares `normalise_text` forms instead.
    """
    return _match(result, expected, normalise)


@scorer(check=check_expected_texts)
def normalised_match(result: LLMResult, expected: str | Sequence[str]) -> Score:
    """`exact_match` after `normalise_text` (case, punctuation, whitespace and Unicode form ignored)."""
    return _match(result, expected, normalise=True)


def _check_contains(substring: Any, **_: Any) -> None:
    items = [substring] if isinstance(substring, str) else substring
    if not isinstance(items, list | tuple) or not items or not all(isinstance(s, str) and s for s in items):
        raise ValueError(f"substring must be a non-empty string or list of them, got {substring!r}")


@scorer(check=_check_contains)
def contains(
    result: LLMResult, substring: str | Sequence[str], all: bool = True, case_sensitive: bool = False
) -> Score:
    """Whether the output contains the substring(s).

    With several substrings and `all=True` the value is the fraction found (so it passes, at the default
    threshold, only when every one is present); with `all=False` it is 1.0 when any one is present.
    """
    needles = [substring] if isinstance(substring, str) else list(substring)
    haystack = result.text if case_sensitive else result.text.casefold()
    found = [n for n in needles if (n if case_sensitive else n.casefold()) in haystack]
    missing = [n for n in needles if n not in found]
    if all:
        value = len(found) / len(needles)
    else:
        value = 1.0 if found else 0.0
    return outcome(value, found=found, missing=missing)


def _regex_flags(flags: int | str) -> int:
    """Flags as an int (`re.I | re.M`) or, for configuration files, names: "IGNORECASE|MULTILINE" or "I|M"."""
    if isinstance(flags, bool):
        raise TypeError("flags must be an int or a string of flag names")
    if isinstance(flags, int):
        return flags
    value = 0
    for name in filter(None, (part.strip().upper() for part in flags.split("|"))):
        try:
            value |= re.RegexFlag[name]
        except KeyError:
            raise ValueError(f"unknown regex flag {name!r}") from None
    return value


def _check_regex(pattern: Any, flags: int | str = 0) -> None:
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be a string, got {type(pattern).__name__}")
    try:
        re.compile(pattern, _regex_flags(flags))
    except re.error as exc:
        raise ValueError(f"invalid pattern {pattern!r}: {exc}") from exc


@scorer(check=_check_regex)
def regex(result: LLMResult, pattern: str, flags: int | str = 0) -> Score:
    """1.0 when `pattern` is found anywhere in the output (`re.search`; anchor it with ^ and $ to match all)."""
    # re caches compiled patterns, so compiling on every call costs a dictionary lookup.
    match = re.compile(pattern, _regex_flags(flags)).search(result.text)
    if match is None:
        return outcome(0.0)
    return outcome(1.0, match=match.group(0)[:200], span=list(match.span()))
