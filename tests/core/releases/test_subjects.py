"""Release subject names are checked before any file lookup or database write (issue #13, item 14)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.prompts import PromptError, PromptRegistry
from core.releases import (
    SUBJECT_MAX_CHARS,
    InvalidSubject,
    check_subject,
    clear_label,
    promote,
    rollback,
    set_canary,
)

VALID = ["greet", "booking_extract", "gpt-4o-mini", "Qwen/Qwen2.5-7B", "ft:gpt-4o:org::abc", "local/smollm2-135m",
         "a" * SUBJECT_MAX_CHARS, "_x", "v1.2", "llama3:8b@q4+k"]
INVALID = ["", "a" * (SUBJECT_MAX_CHARS + 1), "..", ".", "../etc/passwd", "a/../b", "/abs", "trail/", "a//b",
           "a b", "a\x00b", "a\\b", "-flag", ".hidden", "name\n", "é", "a\tb"]


@pytest.mark.parametrize("subject", VALID)
def test_valid_subjects_pass(subject: str) -> None:
    assert check_subject(subject) == subject


@pytest.mark.parametrize("subject", INVALID)
def test_invalid_subjects_are_refused(subject: str) -> None:
    with pytest.raises(InvalidSubject):
        check_subject(subject)


@given(st.text(max_size=400))
def test_an_accepted_subject_is_short_and_cannot_leave_a_directory(subject: str) -> None:
    try:
        check_subject(subject)
    except InvalidSubject:
        return
    assert 0 < len(subject) <= SUBJECT_MAX_CHARS
    parts = subject.split("/")
    assert all(part and part not in (".", "..") for part in parts)
    assert subject.isascii() and subject.isprintable() and "\\" not in subject


def test_release_functions_refuse_a_long_subject_before_touching_files(engine, prompts) -> None:
    long = "x" * 300  # longer than a file name may be: this was `OSError: File name too long`
    with pytest.raises(InvalidSubject):
        promote(engine, long, version="current", registry=prompts.registry, force=True, reason="r")
    with pytest.raises(InvalidSubject):
        set_canary(engine, long, weight=0.1, model="m", registry=prompts.registry)
    with pytest.raises(InvalidSubject):
        rollback(engine, long)
    with pytest.raises(InvalidSubject):
        clear_label(engine, long, "canary")


@pytest.mark.parametrize("name", ["x" * 300, "../../etc/passwd", "greet\n"])
def test_the_registry_refuses_names_that_are_not_prompt_names(tmp_path, name: str) -> None:
    with pytest.raises(PromptError):
        PromptRegistry(tmp_path).get(name)
