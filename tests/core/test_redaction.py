"""PII redaction: what must be replaced, and ordinary numbers that must be left alone."""

from __future__ import annotations

import json

import pytest

from core.redaction import luhn_valid, redact_pii


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to john.doe+tag@example.co.uk today", "write to [EMAIL] today"),
        ("CC: A_B@sub.mail-host.org, x@y.io.", "CC: [EMAIL], [EMAIL]."),
        ("call +44 20 7946 0958 now", "call [PHONE] now"),
        ("call +1 (555) 123-4567", "call [PHONE]"),
        ("call +33612345678", "call [PHONE]"),
        ("US (555) 123-4567 or 555-123-4567 or 555.123.4567", "US [PHONE] or [PHONE] or [PHONE]"),
        ("toll free 1-800-555-0199", "toll free [PHONE]"),
        ("FR 06 12 34 56 78", "FR [PHONE]"),
        ("UK 020 7946 0958, mobile 07700 900123", "UK [PHONE], mobile [PHONE]"),
        ("DE (030) 1234 5678", "DE [PHONE]"),
        ("visa 4111 1111 1111 1111 ok", "visa [CARD] ok"),
        ("mc 5555-5555-5555-4444", "mc [CARD]"),
        ("amex 378282246310005", "amex [CARD]"),
        (
            '{"created": 1700000000, "text": "card 4111111111111111, call 555-123-4567."}',
            '{"created": 1700000000, "text": "card [CARD], call [PHONE]."}',
        ),
    ],
)
def test_pii_is_replaced(text: str, expected: str) -> None:
    redacted, count = redact_pii(text)
    assert redacted == expected
    assert count == expected.count("[")


@pytest.mark.parametrize(
    "text",
    [
        "In 2024 the plan cost $1,234.56 (was 999.99).",
        "order id 123456789012 and ref 20240115",
        "dates 2024-01-15, 01-15-2024, 02.03.2024 at 10:30:00",
        "uuid 550e8400-e29b-41d4-a716-446655440000, version 1.2.3, build 1.2.3.4567",
        "ranges 1999-2024, pages 100-200, +5 points, pi 3.14159265358979",
        "epoch 1700000000.123456 and millis 1700000000123",
        "card-like but Luhn-invalid 4111 1111 1111 1112",
        "no domain user@localhost and a@b.c",
        "short +1 555",
    ],
)
def test_ordinary_text_is_untouched(text: str) -> None:
    assert redact_pii(text) == (text, 0)


def test_values_inside_a_json_body_after_escapes_are_found() -> None:
    body = json.dumps({"content": "hi\njohn@example.com\n555-123-4567\n4111111111111111\tend"})
    redacted, count = redact_pii(body)
    assert count == 3
    assert json.loads(redacted)["content"] == "hi\n[EMAIL]\n[PHONE]\n[CARD]\tend"


def test_mixed_text_counts_every_kind() -> None:
    text = "Reach me at ana@example.org or +49 30 1234 5678; card 4012 8888 8888 1881; in 2023."
    redacted, count = redact_pii(text)
    assert redacted == "Reach me at [EMAIL] or [PHONE]; card [CARD]; in 2023."
    assert count == 3


def test_text_without_digits_or_at_sign_is_returned_as_is() -> None:
    text = "nothing to see here " * 100
    redacted, count = redact_pii(text)
    assert redacted is text
    assert count == 0


@pytest.mark.parametrize(
    ("digits", "valid"),
    [("4111111111111111", True), ("4111111111111112", False), ("79927398713", True), ("0", True)],
)
def test_luhn(digits: str, valid: bool) -> None:
    assert luhn_valid(digits) is valid
