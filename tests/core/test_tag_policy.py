"""Client tags are cleaned by the PII policy before anything keeps them; user ids can be stored only hashed."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from core.settings import Settings
from core.tag_policy import HASHED_USER_PREFIX, MAX_TAG_CHARS, SCAN_CHARS, TagPolicy

# (value, raw PII that must not survive)
HOSTILE = [
    ("someone@example.com", "someone@example.com"),
    ("someone%40example.com", "someone"),  # percent-encoded
    ("someone%2540example.com", "someone"),  # encoded twice
    ("ｓｏｍｅｏｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ", "ｓｏｍｅｏｎｅ"),  # full-width forms
    ("team-a/user:someone@example.com/beta", "someone@example.com"),  # mid-string
    ("id_someone@example.com", "someone@example.com"),  # glued to an id
    ("call +44 20 7946 0958 today", "7946 0958"),
    ("feature-+14155552671", "4155552671"),  # glued E.164 phone
    ("(555) 123-4567", "123-4567"),
    ("4111 1111 1111 1111", "1111 1111"),
    ("order-4111111111111111-retry", "4111111111111111"),  # glued card (Luhn-valid)
    ("４１１１１１１１１１１１１１１１", "１１１１１１"),  # full-width digits
    ("ssn 123-45-6789", "123-45-6789"),
    ("from 192.168.10.20", "192.168.10.20"),
    ("GB82 WEST 1234 5698 7654 32", "5698 7654"),
    ("x" * 190 + "someone@example.com", "someone@exam"),  # would straddle the 200-character cut
    ("ünïcødé-ユーザー someone@example.com ✓", "someone@example.com"),
]
# Odd but valid values without PII are kept as they are.
PLAIN = ["support-bot", "José Müller", "ユーザー", "booking_extract", "3f2a9c1e4b5d6e7f8a9b0c1d2e3f4a5b",
         "release-2026-12-03", "v1.2.3", "order-1234567890123-x", "a" * 150]


@pytest.mark.parametrize(("value", "secret"), HOSTILE)
def test_pii_in_a_tag_never_survives(value, secret):
    cleaned = TagPolicy().clean(value)
    assert cleaned is not None and secret not in cleaned
    assert "[" in cleaned and len(cleaned) <= MAX_TAG_CHARS


@pytest.mark.parametrize("value", PLAIN)
def test_plain_tags_are_kept(value):
    assert TagPolicy().clean(value) == value[:MAX_TAG_CHARS]


def test_redaction_off_keeps_tags_but_still_cuts_them():
    assert TagPolicy(redact=False).clean("someone@example.com") == "someone@example.com"
    assert TagPolicy(redact=False).clean("y" * 5000) == "y" * MAX_TAG_CHARS
    assert TagPolicy().clean("y " * 300) == ("y " * 100)[:MAX_TAG_CHARS]



def test_long_values_are_scanned_in_bounded_time_and_never_keep_a_cut_value():
    # Only the first SCAN_CHARS are scanned (detectors run on the request path); a token cut there is dropped
    # when it may hold PII, so 'someone@exa' of a cut address can never be kept.
    # Ten addresses shrink by 35 characters each, pulling what the scan cut (`someon`) inside the stored 200.
    crowded = "abcdefghijklmnopqrstuvwxyz0123@example.org " * 10 + "x " * 38
    assert len(crowded) == SCAN_CHARS - 6
    cleaned = TagPolicy().clean(crowded + "someone@example.com") or ""
    assert cleaned == "[EMAIL] " * 10 + "x " * 38 + "…"
    assert TagPolicy().clean("1" * 100_000) == TagPolicy().clean("y" * 5000) == "…"


def test_hashed_users_are_stable_keyed_and_free_of_the_id():
    policy = TagPolicy(user_key=b"k1")
    first = policy.user("someone@example.com")
    assert first == policy.user("someone@example.com") == policy.user("ｓｏｍｅｏｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ")
    assert first is not None and first.startswith(HASHED_USER_PREFIX) and len(first) == 34
    assert "someone" not in first and first != policy.user("someone-else@example.com")
    assert TagPolicy(user_key=b"k2").user("someone@example.com") != first  # keyed: no rainbow table
    assert TagPolicy().clean(first) == first  # a hash is never mistaken for PII
    assert TagPolicy().user("someone@example.com") == "[EMAIL]"


def test_hash_users_without_its_key_refuses_to_start(monkeypatch):
    monkeypatch.delenv("TEAM_USER_KEY", raising=False)
    settings = Settings(access={"hash_users": True, "user_hash_key_env": "TEAM_USER_KEY"})
    with pytest.raises(ConfigError, match="TEAM_USER_KEY"):
        TagPolicy.from_settings(settings)
    monkeypatch.setenv("TEAM_USER_KEY", "a long random secret")
    assert TagPolicy.from_settings(settings).hashes_users
