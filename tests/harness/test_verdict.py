"""The failing-case snippets shown in the terminal and posted in the markdown summary."""

from __future__ import annotations

from harness.verdict import FailedCase, snippet


def test_snippet_is_one_line_and_cut():
    assert snippet("a\n  b\tc") == "a b c"
    long = snippet("x" * 500, width=20)
    assert long == "x" * 17 + "..." and len(long) == 20
    assert snippet({"text": "hi"}) == '{"text":"hi"}'
    assert snippet(None) == ""


def test_snippets_redact_pii_before_the_cut():
    # The e-mail straddles the cut: redacting after cutting would leave its first half readable.
    text = "y" * 15 + " jane.doe@example.com and more"
    cut = snippet(text, width=24)
    assert cut == "y" * 15 + " [EMAI..." and "jane" not in cut
    case = FailedCase.from_row(
        {"suite": "s", "case_id": "c1", "inputs": {"q": "call +44 20 7946 0958"},
         "output": {"text": "mail jane.doe@example.com"}, "error": None},
        expected="card 4111 1111 1111 1111",
    )
    assert case.input == '{"q":"call [PHONE]"}'
    assert case.answer == "mail [EMAIL]"
    assert case.expected == "card [CARD]"
    assert case.error is None
