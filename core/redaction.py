"""PII detection and redaction: e-mails, phones, payment cards, IBANs, national ids and IP addresses.

Built to run on every logged body, so each kind has a cheap pre-check (`'@' in text`, a digit run, a `.`
or `:`) before its regular expression runs. `find_pii` returns the matches with their kind and position;
`redact_pii` replaces them with `[EMAIL]`, `[PHONE]`, `[CARD]`, `[IBAN]`, `[NATIONAL_ID]` and `[IP]`.

Checks that keep ordinary numbers alone:
- phones need phone-like structure (a leading `+country`, a trunk `0` with grouped digits, or the North
  American `(555) 123-4567` shape), so years, prices, dates and plain ids are left alone;
- cards are 13-19 digits, optionally grouped by single spaces or dashes, and must pass the Luhn check;
- IBANs are a country code, two check digits and 11-30 letters or digits (spaces allowed between groups of
  four) that must pass the ISO 13616 mod-97 check;
- national ids are US social security numbers in their dashed form (area, group and serial ranges that are
  never issued are skipped) and UK National Insurance numbers (the prefixes never issued are skipped);
- IPv4 addresses need four octets of at most 255; IPv6 addresses must parse as such.

Bodies are logged as raw JSON, so a match may follow an escape such as `\\n`: the lookbehinds allow that.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

EMAIL_PLACEHOLDER = "[EMAIL]"
PHONE_PLACEHOLDER = "[PHONE]"
CARD_PLACEHOLDER = "[CARD]"
IBAN_PLACEHOLDER = "[IBAN]"
NATIONAL_ID_PLACEHOLDER = "[NATIONAL_ID]"
IP_PLACEHOLDER = "[IP]"

PLACEHOLDERS: dict[str, str] = {
    "email": EMAIL_PLACEHOLDER,
    "phone": PHONE_PLACEHOLDER,
    "card": CARD_PLACEHOLDER,
    "iban": IBAN_PLACEHOLDER,
    "national_id": NATIONAL_ID_PLACEHOLDER,
    "ip": IP_PLACEHOLDER,
}
PII_KINDS: tuple[str, ...] = tuple(PLACEHOLDERS)

_AFTER_ESCAPE = r"(?<=\\[nrt])"

_EMAIL = re.compile(
    r"(?:(?<![\w.%+\\-])|(?<=\\[nrt]))[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![\w-])"
)

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

# US SSN (dashed): area 001-899 except 666, group 01-99, serial 0001-9999.
_SSN = re.compile(
    r"(?:(?<![\w-])|(?<=\\[nrt]))(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w]|-\d)"
)
# UK National Insurance number: two prefix letters (some never issued), six digits, suffix A-D.
_NINO = re.compile(
    r"(?:(?<![\w])|(?<=\\[nrt]))(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
    r" ?\d{2} ?\d{2} ?\d{2} ?[A-D](?!\w)"
)
# Country code, check digits, then groups (single spaces allowed between characters); checked by mod 97.
_IBAN = re.compile(r"(?:(?<![\w])|(?<=\\[nrt]))[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![\w])")
_IPV4 = re.compile(r"(?:(?<![\w.])|(?<=\\[nrt]))(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?:(?<![\w:.])|(?<=\\[nrt]))[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")

# A candidate for IPv6 starts with a literal `:`, which `re` finds fast; a pattern that starts with a
# lookbehind is tried at every position of the text instead.
_IPV6_CANDIDATE = re.compile(r":[0-9A-Fa-f]{0,4}:")

_PHONE_MIN_DIGITS = 8
_PHONE_MAX_DIGITS = 15
# A run of 4+ digits joined by short separator runs: every phone, card, IPv4 address, SSN and NINO lies
# inside one (plus a leading `+`, `(` or letters), and every IBAN holds one. Starting with a character class
# lets `re` skip other text quickly, so the strict patterns only ever run on small windows around runs.
_DIGIT_RUN = re.compile(r"[0-9](?:[ ().\-/]{0,3}[0-9]){3,}")
_WINDOW_BEFORE = 14  # an IBAN's `GB82 WEST ` before its first long digit run, and the lookbehinds
_WINDOW_AFTER = 4  # a NINO's last letter, and the lookaheads
_IBAN_AFTER = 40  # an IBAN's letters and digits after its first long run


@dataclass(frozen=True, slots=True)
class PiiMatch:
    """One detected value: its kind (a key of `PLACEHOLDERS`) and where it sits in the text."""

    kind: str
    start: int
    end: int
    value: str


def find_pii(text: str, kinds: Iterable[str] = PII_KINDS) -> list[PiiMatch]:
    """Every PII value in `text`, in order, without overlaps (a card wins over a phone inside it)."""
    wanted = frozenset(kinds)
    found: list[PiiMatch] = []
    if "email" in wanted and "@" in text:
        _collect(found, "email", _EMAIL, text, 0, None)
    if "ip" in wanted and ":" in text:
        _scan(found, "ip", _IPV6_CANDIDATE, _IPV6, text, _ipv6_end, reach=40)
    numbered = [(kind, pattern, decide) for kind, pattern, decide in _NUMBERED if kind in wanted]
    if numbered:
        # Every other kind holds a run of 4+ digits: scan for runs once, then try the strict patterns on a
        # small window around each (wide enough before it for an IBAN's letters, `+`, `(` and lookbehinds).
        for run in _DIGIT_RUN.finditer(text):
            value = run.group()
            digits = len(value) - sum(not char.isdigit() for char in value)
            start = max(run.start() - _WINDOW_BEFORE, 0)
            for kind, pattern, decide in numbered:
                after = _IBAN_AFTER if pattern is _IBAN else _WINDOW_AFTER
                window = text[start : run.end() + after]
                if _may_hold(kind, pattern, value, digits, window):
                    _collect(found, kind, pattern, window, start, decide, run.end() + after >= len(text),
                             (run.start() - start, run.end() - start))
    found.sort(key=lambda match: match.start)
    return found


def redact_pii(text: str, kinds: Iterable[str] = PII_KINDS) -> tuple[str, int]:
    """Replace the PII in `text` by placeholders; return the new text and how many values were replaced.

    Redacting redacted text changes nothing: the placeholders contain no PII, and the text is scanned again
    after a replacement until nothing more is found.
    """
    kinds = tuple(kinds)
    total = 0
    # A replacement can expose a new match at its border (`...com+44 20...`: the phone had a letter before
    # it). Every replacement removes digits or an `@` and adds none, so this reaches a fixpoint.
    for _ in range(len(text) + 1):
        matches = find_pii(text, kinds)
        if not matches:
            break
        text = replace_matches(text, matches, lambda match: PLACEHOLDERS[match.kind])
        total += len(matches)
    return text, total


def replace_matches(text: str, matches: list[PiiMatch], replacement: Callable[[PiiMatch], str]) -> str:
    """`text` with each (ordered, non-overlapping) match replaced by `replacement(match)`."""
    pieces: list[str] = []
    done = 0
    for match in matches:
        pieces.append(text[done : match.start])
        pieces.append(replacement(match))
        done = match.end
    pieces.append(text[done:])
    return "".join(pieces)


def luhn_valid(digits: str) -> bool:
    """True when the digit string passes the Luhn checksum used by payment cards."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    """True when `candidate` (spaces allowed) passes the IBAN mod-97 check."""
    compact = candidate.replace(" ", "")
    if not 15 <= len(compact) <= 34 or not compact.isalnum() or not compact.isascii():
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)
    return int(number) % 97 == 1


# --- decisions: given a candidate match, the end of the value to take (or None to skip it) ---

_Decide = Callable[[re.Match[str]], "int | None"]


_NUMBERED: tuple[tuple[str, re.Pattern[str], _Decide | None], ...] = ()  # set below, after the deciders


def _may_hold(kind: str, pattern: re.Pattern[str], run: str, digits: int, window: str) -> bool:
    """Cheap necessary conditions, so most digit runs (dates, prices, ids) try no pattern or one."""
    if kind == "phone":
        return _PHONE_MIN_DIGITS <= digits
    if kind == "card":
        return digits >= 13
    if kind == "ip":
        return "." in run
    if pattern is _SSN:
        return digits == 9 and "-" in run
    # IBAN and NINO start with two capital letters
    return (digits >= 6 if pattern is _NINO else digits >= 4) and not window.islower() and _CAPITALS.search(window) is not None


_CAPITALS = re.compile(r"[A-Z]{2}")


def _scan(
    found: list[PiiMatch], kind: str, candidate: re.Pattern[str], strict: re.Pattern[str], text: str,
    decide: _Decide | None, reach: int = 0,
) -> None:
    """Run `strict` on windows around `candidate` matches (widened by `reach` for values that extend
    beyond their candidate), each with room for the lookarounds."""
    end_of_last = -1
    for hit in candidate.finditer(text):
        start = max(hit.start() - _WINDOW_BEFORE - reach, end_of_last, 0)
        end = hit.end() + _WINDOW_AFTER + reach
        if start >= end:
            continue
        _collect(found, kind, strict, text[start:end], start, decide, whole=end >= len(text))
        end_of_last = end - _WINDOW_AFTER - reach  # overlapping windows: never look at a stretch twice


def _collect(
    found: list[PiiMatch], kind: str, pattern: re.Pattern[str], text: str, offset: int, decide: _Decide | None,
    whole: bool = True, anchor: tuple[int, int] | None = None,
) -> None:
    """Add `pattern`'s accepted matches in `text` (a window at `offset` when not `whole`) that overlap none found.

    With `anchor` (a span of the window), only matches overlapping it count: a window reaches past its digit
    run, and a value there belongs to the next run's window, where every kind is tried in priority order.
    """
    for match in pattern.finditer(text):
        if not whole and match.end() == len(text):
            continue  # cut off by the window's end: a wider window (or none) sees the whole value
        if anchor is not None and (match.end() <= anchor[0] or match.start() >= anchor[1]):
            continue
        end = match.end() if decide is None else decide(match)
        if end is None:
            continue
        start, end = match.start() + offset, end + offset
        if any(start < other.end and other.start < end for other in found):
            continue
        found.append(PiiMatch(kind, start, end, match.string[match.start() : end - offset]))


def _iban_end(match: re.Match[str]) -> int | None:
    # The greedy pattern may take a following upper-case word along; drop trailing groups until valid.
    value = match.group()
    while len(value.replace(" ", "")) >= 15:
        if iban_valid(value):
            return match.start() + len(value)
        cut = value.rfind(" ")
        if cut < 0:
            return None
        value = value[:cut]
    return None


def _card_end(match: re.Match[str]) -> int | None:
    digits = match.group().replace(" ", "").replace("-", "")
    return match.end() if 13 <= len(digits) <= 19 and luhn_valid(digits) else None


def _phone_end(match: re.Match[str]) -> int | None:
    digits = sum(map(str.isdigit, match.group()))
    return match.end() if _PHONE_MIN_DIGITS <= digits <= _PHONE_MAX_DIGITS else None


def _ipv4_end(match: re.Match[str]) -> int | None:
    octets = match.group().split(".")
    if all(len(octet) == 1 or octet[0] != "0" for octet in octets) and all(int(o) <= 255 for o in octets):
        return match.end()
    return None


def _ipv6_end(match: re.Match[str]) -> int | None:
    value = match.group()
    groups = [group for group in value.split(":") if group]
    if len(groups) < 3 and max(map(len, groups), default=0) < 3:
        return None  # `fe80::1` passes, `a::b` (C++ scopes, times) does not
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return None
    return match.end()


_NUMBERED = (
    ("iban", _IBAN, _iban_end),
    ("card", _CARD, _card_end),
    ("national_id", _SSN, None),
    ("national_id", _NINO, None),
    ("ip", _IPV4, _ipv4_end),
    ("phone", _PHONE, _phone_end),
)
