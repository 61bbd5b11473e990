"""PII redaction for logged text: e-mail addresses, phone numbers and payment card numbers.

Built to run on every logged body, so each kind has a cheap pre-check (`'@' in text`, a digit run)
before its regular expression runs. Matches are replaced with `[EMAIL]`, `[PHONE]` and `[CARD]`.

Phone numbers need phone-like structure (a leading `+country`, a trunk `0` with grouped digits, or the
North American `(555) 123-4567` shape) so that years, prices, dates and plain ids are left alone.
Card numbers are 13-19 digits, optionally grouped by single spaces or dashes, and must pass the Luhn check.
"""

from __future__ import annotations

import re
from collections.abc import Callable

EMAIL_PLACEHOLDER = "[EMAIL]"
PHONE_PLACEHOLDER = "[PHONE]"
CARD_PLACEHOLDER = "[CARD]"

_EMAIL = re.compile(
    r"(?:(?<![\w.%+\\-])|(?<=\\[nrt]))[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![\w-])"
)

# Bodies are logged as raw JSON, so a match may follow an escape such as `\n`: the lookbehinds allow that.
# 13-19 digits, groups separated by at most one space or dash; never glued to other digits or letters.
_CARD = re.compile(r"(?:(?<![\w.,\\-])|(?<=\\[nrt]))\d(?:[ -]?\d){12,18}(?![\w]|[.,-]\d)")

_PHONE = re.compile(
    r"(?:(?<![\w+.,/\\-])|(?<=\\[nrt]))(?:"
    # International: +CC then groups, separated by single spaces, dots or dashes, area code maybe in parens.
    r"\+\d{1,3}(?:[ .-]?\(\d{1,5}\)|[ .-]?\d{1,5}){1,6}"
    # North American: (555) 123-4567, 555-123-4567, 555.123.4567, 1-555-123-4567.
    r"|(?:1[ .-])?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}"
    # French-style pairs: 06 12 34 56 78.
    r"|0\d(?:[ .-]\d\d){4}"
    # Trunk-prefix national numbers: 020 7946 0958, (030) 1234 5678, 07700 900123.
    r"|(?:\(0\d{1,4}\)|0\d{1,4}) ?[ /.-]?\d{3,8}(?:[ .-]\d{3,4}){0,2}"
    r")(?![\w]|[.,-]\d)"
)

_PHONE_MIN_DIGITS = 8
_PHONE_MAX_DIGITS = 15
# A run of 8+ digits joined by short separator runs: every phone or card match lies inside one (plus a
# leading `+` or `(`). Starting with a character class lets `re` skip other text quickly, so the
# strict patterns only ever run on small windows around such runs.
_NUMBER_RUN = re.compile(r"[0-9](?:[ ().\-/]{0,3}[0-9]){7,}")
_WINDOW_BEFORE = 3  # room for `+`/`(` and the character the lookbehinds inspect
_WINDOW_AFTER = 2  # room for the lookaheads

_Decision = Callable[[re.Match[str]], "str | None"]


def redact_pii(text: str) -> tuple[str, int]:
    """Replace e-mails, phone numbers and card numbers in `text`; return the new text and the count."""
    count = 0
    if "@" in text:
        text, count = _EMAIL.subn(EMAIL_PLACEHOLDER, text)
    runs = list(_NUMBER_RUN.finditer(text))
    if not runs:
        return text, count
    pieces: list[str] = []
    done = 0
    for run in runs:
        start = max(run.start() - _WINDOW_BEFORE, done)
        end = min(run.end() + _WINDOW_AFTER, len(text))
        window, found = _redact_numbers(text[start:end])
        if found:
            pieces.append(text[done:start])
            pieces.append(window)
            done = end
            count += found
    if not pieces:
        return text, count
    pieces.append(text[done:])
    return "".join(pieces), count


def _redact_numbers(window: str) -> tuple[str, int]:
    window, cards = _replace(_CARD, window, _card_or_none)
    window, phones = _replace(_PHONE, window, _phone_or_none)
    return window, cards + phones


def luhn_valid(digits: str) -> bool:
    """True when the digit string passes the Luhn checksum used by payment cards."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card_or_none(match: re.Match[str]) -> str | None:
    digits = match.group().replace(" ", "").replace("-", "")
    if 13 <= len(digits) <= 19 and luhn_valid(digits):
        return CARD_PLACEHOLDER
    return None


def _phone_or_none(match: re.Match[str]) -> str | None:
    digits = sum(map(str.isdigit, match.group()))
    if _PHONE_MIN_DIGITS <= digits <= _PHONE_MAX_DIGITS:
        return PHONE_PLACEHOLDER
    return None


def _replace(pattern: re.Pattern[str], text: str, decide: _Decision) -> tuple[str, int]:
    """`re.subn` where `decide` may keep a candidate match unchanged (returns None)."""
    count = 0

    def substitute(match: re.Match[str]) -> str:
        nonlocal count
        replacement = decide(match)
        if replacement is None:
            return match.group()
        count += 1
        return replacement

    return pattern.sub(substitute, text), count
