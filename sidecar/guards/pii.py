"""PII masking before the upstream, with the values put back into the answer.

`Masker.mask` replaces each distinct value with a numbered token (`[EMAIL_1]`, `[PHONE_2]`); the same value
gets the same token everywhere in the request, so the model can still refer to it. `restore` puts the
values back into the answer. The mapping lives only in the request's memory, never in the log.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from core.redaction import PLACEHOLDERS, find_pii, redact_pii, replace_matches

_TOKEN = re.compile(r"\[(?:EMAIL|PHONE|CARD|IBAN|NATIONAL_ID|IP)_\d+\]")
MAX_TOKEN_CHARS = 24  # the longest token a stream may have cut in half (`[NATIONAL_ID_9999]` and more)


class Masker:
    """Masks the PII of one request and restores it in that request's answer."""

    def __init__(self, kinds: Sequence[str]) -> None:
        self.kinds = tuple(kinds)
        self.values: dict[str, str] = {}  # token -> original value
        self._tokens: dict[str, str] = {}  # original value -> token
        self.masked = 0

    def mask(self, text: str) -> str:
        # Like `redact_pii`, scan again after replacing until a fixpoint: a token's border can expose a value.
        for _ in range(len(text) + 1):
            matches = find_pii(text, self.kinds)
            if not matches:
                break
            self.masked += len(matches)
            text = replace_matches(text, matches, lambda match: self._token_for(match.kind, match.value))
        return text

    def _token_for(self, kind: str, value: str) -> str:
        token = self._tokens.get(value)
        if token is None:
            token = f"{PLACEHOLDERS[kind][:-1]}_{len(self._tokens) + 1}]"
            self._tokens[value] = token
            self.values[token] = value
        return token

    def restore(self, text: str) -> str:
        if not self.values or "[" not in text:
            return text
        return _TOKEN.sub(lambda match: self.values.get(match.group(), match.group()), text)


def redact_text(text: str, kinds: Sequence[str]) -> str:
    """`text` with its PII of `kinds` replaced by placeholders."""
    return redact_pii(text, kinds)[0]
