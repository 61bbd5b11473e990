"""What a release subject (a prompt name or a model alias) may be called.

A subject names a prompt file under `releases.prompts_dir` and a database key (200 characters), and it
arrives from clients as a path segment of the admin API. It is checked once, before anything touches the
file system or the database: at most 200 characters, segments of letters, digits and `_ . : @ + -` separated
by single `/` (model aliases such as `org/model:tag`), each segment starting with a letter, digit or `_`,
so `..`, `.`, empty segments, leading or trailing `/`, backslashes, NUL and other control characters are
refused.
"""

from __future__ import annotations

import re

from core.releases.errors import ReleaseError

SUBJECT_MAX_CHARS = 200
_SEGMENT = r"[A-Za-z0-9_][A-Za-z0-9_.:@+-]*"
_SUBJECT_RE = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT})*")


class InvalidSubject(ReleaseError):
    """A subject name that is too long or holds characters a subject may not hold."""


def check_subject(subject: object) -> str:
    """`subject` when it is a valid subject name; raises `InvalidSubject` saying why otherwise."""
    if not isinstance(subject, str) or not subject:
        raise InvalidSubject("a subject (prompt name or model alias) is required")
    if len(subject) > SUBJECT_MAX_CHARS:
        raise InvalidSubject(f"a subject is at most {SUBJECT_MAX_CHARS} characters, got {len(subject)}")
    if not _SUBJECT_RE.fullmatch(subject):
        raise InvalidSubject(
            f"invalid subject {subject[:60]!r}: use letters, digits and '_ . : @ + -', "
            "in segments separated by '/', each starting with a letter, digit or '_'"
        )
    return subject
