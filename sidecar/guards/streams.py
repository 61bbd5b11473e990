"""Output guards on a stream, applied to events as they pass, never holding the whole answer.

- PII in the answer is redacted (or masked values restored) through a small look-back buffer. Text is
  released up to the last whitespace followed by a lower-case letter: no PII value contains that pair, and
  the characters on both sides of such a cut are the same in the original and the redacted text, so
  redacting piece by piece finds exactly what redacting the whole answer would, and usually only the last
  word or two are held. Text without such a place (digit runs, scripts without spaces) is held up to
  `lookback` characters, then released up to `lookback` characters from its end, never cutting a value
  seen in it (every kind is shorter than the buffer). Held text goes out with the next events, at the
  latest with the finish event.
- Events are read with the one event-stream parser (`core.sse`), whatever their framing, and re-emitted in
  the canonical `data: <json>` form. An event that is not JSON cannot be checked: it is withheld and the
  stream ends with an error event (`StreamBlocked`), never passed on raw.
- Checks that need the whole answer (semantic categories, schema, confidence) run when `[DONE]` arrives,
  before it is passed on; one that fails raises `StreamBlocked`, so the client gets an error event instead
  of `[DONE]`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson

from core.redaction import PLACEHOLDERS, PiiMatch, find_pii, redact_pii, replace_matches
from core.sse import DONE_EVENT, EventStreamParser, encode_event
from sidecar.guards.confidence import LogprobTally
from sidecar.guards.pii import MAX_TOKEN_CHARS, Masker
from sidecar.pipeline import StreamBlocked

EndCheck = Callable[[str, LogprobTally], None]
"""Called with the answer's text and logprob tally at `[DONE]`; raises `StreamBlocked` to end the stream."""
PiiFound = Callable[[str], None]
"""Called with released text that contained PII before it was redacted (may raise `StreamBlocked`)."""


class LookBack:
    """Holds the tail of a streamed text so PII values and mask tokens are never released half-seen."""

    def __init__(self, lookback: int, kinds: Sequence[str], redact: bool, masker: Masker | None,
                 found: PiiFound | None) -> None:
        self.lookback = lookback
        self.kinds = tuple(kinds)
        self.redact = redact
        self.masker = masker
        self.found = found
        self.pending = ""
        self.sent = ""  # the last characters released: the context new text is redacted in

    def push(self, text: str) -> str:
        """Add text; return what can be released now (already redacted/restored)."""
        self.pending += text
        cut = _safe_cut(self.pending, len(self.pending) - 1)
        if cut is None:
            cut = len(self.pending) - self.lookback
            if cut <= 0:
                return ""
        return self._release(cut)

    def flush(self) -> str:
        """Release everything held (the answer is complete)."""
        return self._release(len(self.pending)) if self.pending else ""

    def _release(self, cut: int) -> str:
        pending = self.pending
        if self.masker is not None:
            restored = self.masker.restore(pending)
            cut += len(restored) - len(pending) if cut >= len(pending) else 0
            pending = restored
            opening = pending.rfind("[", max(0, cut - MAX_TOKEN_CHARS), cut)
            if opening >= 0 and "]" not in pending[opening:cut]:
                cut = opening  # a mask token may be cut in half here: keep it whole
        matches: list[PiiMatch] = []
        offset = len(self.sent)
        if self.kinds:
            # Values are found in what was released before plus everything held: the most context there is.
            matches = [m for m in find_pii(self.sent + pending, self.kinds) if m.end > offset]
            for match in matches:
                if match.start - offset < cut < match.end - offset:
                    cut = max(match.start - offset, 0)  # never release part of a value
        released, self.pending = pending[:cut], pending[cut:]
        if self.kinds and released:
            inside = [PiiMatch(m.kind, max(m.start - offset, 0), m.end - offset, m.value)
                      for m in matches if m.end - offset <= cut]
            redacted = replace_matches(released, inside, lambda m: PLACEHOLDERS[m.kind]) if inside else released
            redacted, more = _redact_after(self.sent, redacted, self.kinds)
            if inside or more:
                if self.found is not None:
                    self.found(released)
                if self.redact:
                    released = redacted
        self.sent = (self.sent + released)[-_CONTEXT:]
        return released


_CONTEXT = 32


def _redact_after(sent: str, text: str, kinds: Sequence[str]) -> tuple[str, int]:
    """Redact `text` as it reads after the already released `sent`.

    After a safe cut the context changes nothing. After a forced one (text without spaces), a value may
    begin in `sent`: the part of it in `text` is replaced, so the joined output holds no whole value.
    """
    count = 0
    for _ in range(len(text) + 1):
        matches = [m for m in find_pii(sent + text, kinds) if m.end > len(sent)]
        if not matches:
            break
        count += len(matches)
        pieces: list[str] = []
        done = 0
        for match in matches:
            start, end = max(match.start - len(sent), 0), match.end - len(sent)
            pieces += [text[done:start], PLACEHOLDERS[match.kind]]
            done = end
        text = "".join(pieces) + text[done:]
    return text, count


class GuardStreamFilter:
    """The guard stage's stream filter for one request (see the module docstring)."""

    def __init__(self, lookback: LookBack | None, end_checks: Sequence[EndCheck], tally: LogprobTally | None,
                 strip_logprobs: bool) -> None:
        self.lookback = lookback
        self.end_checks = list(end_checks)
        self.tally = tally
        self.strip_logprobs = strip_logprobs
        self.keep_text = bool(end_checks)
        self.text: list[str] = []
        self._last: dict[str, Any] | None = None
        self._done = False
        self._parser = EventStreamParser()

    def feed(self, events: bytes) -> bytes:
        out: list[bytes] = []
        for event in self._parser.feed(events):
            if event.done:
                out.extend(self._finish())
                out.append(DONE_EVENT)
            else:
                out.append(self._event(event.data))
        return b"".join(out)

    def _event(self, data: bytes) -> bytes:
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError:
            # Text that cannot be read cannot be checked: withhold it and end the stream.
            raise StreamBlocked("the upstream sent an answer event that is not JSON; it was withheld",
                                code="upstream_invalid_response", error_class="parse_failure") from None
        choices = document.get("choices") if isinstance(document, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return self._other_event(document, data)
        choice = choices[0]
        self._last = document
        changed = False
        if self.tally is not None:
            self.tally.add_choice(choice)
            if self.strip_logprobs and choice.get("logprobs") is not None:
                choice["logprobs"] = None
                changed = True
        holder, key = _text_slot(choice)
        text = holder.get(key) if holder is not None else None
        if isinstance(text, str) and text:
            if self.keep_text:
                self.text.append(text)
            if self.lookback is not None:
                holder[key] = self.lookback.push(text)  # type: ignore[index]
                changed = True
        if choice.get("finish_reason") and self.lookback is not None:
            rest = self.lookback.flush()
            if rest:
                slot, name = holder, key
                if slot is None:
                    slot = choice.setdefault("delta", {})
                    name = "content"
                slot[name] = (slot.get(name) or "") + rest
                changed = True
        return b"data: " + orjson.dumps(document) + b"\n\n" if changed else encode_event(data)

    def _other_event(self, document: Any, data: bytes) -> bytes:
        """An event that is not an answer chunk (usage, an upstream `error` event): an upstream may quote the
        prompt or the answer in it, so its strings get the same PII policy as the answer's."""
        lookback = self.lookback
        if lookback is None or not lookback.kinds:
            return encode_event(data)
        redacted, count = _redact_strings(document, lookback.kinds)
        if not count:
            return encode_event(data)
        if lookback.found is not None:
            lookback.found(data.decode(errors="replace"))  # a `block` action ends the stream here
        return b"data: " + orjson.dumps(redacted) + b"\n\n" if lookback.redact else encode_event(data)

    def _finish(self) -> list[bytes]:
        """Before `[DONE]`: the held text, then the whole-answer checks (which may end the stream)."""
        if self._done:
            return []
        self._done = True
        out: list[bytes] = []
        if self.lookback is not None:
            rest = self.lookback.flush()
            if rest:
                out.append(self._carrier(rest))
        if self.end_checks:
            text = "".join(self.text)
            tally = self.tally or LogprobTally()
            for check in self.end_checks:
                check(text, tally)
        return out

    def _carrier(self, text: str) -> bytes:
        """An event carrying held-back text, shaped like the stream's other events."""
        base = dict(self._last or {})
        if base.get("object") == "text_completion":
            choice: dict[str, Any] = {"index": 0, "text": text, "logprobs": None, "finish_reason": None}
        else:
            choice = {"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": None}
        base["choices"] = [choice]
        base.pop("usage", None)
        return b"data: " + orjson.dumps(base) + b"\n\n"


def _redact_strings(value: Any, kinds: Sequence[str]) -> tuple[Any, int]:
    """`value` (parsed JSON) with PII replaced in every string, and how many values were replaced."""
    if isinstance(value, str):
        return redact_pii(value, kinds)
    if isinstance(value, list):
        pairs = [_redact_strings(item, kinds) for item in value]
        return [item for item, _ in pairs], sum(count for _, count in pairs)
    if isinstance(value, dict):
        total = 0
        out: dict[str, Any] = {}
        for key, item in value.items():
            out[key], count = _redact_strings(item, kinds)
            total += count
        return out, total
    return value, 0


def _safe_cut(text: str, limit: int) -> int | None:
    """The last index <= `limit` just after a whitespace and at a lower-case letter, or None."""
    for index in range(limit, 0, -1):
        if text[index - 1].isspace() and "a" <= text[index] <= "z":
            return index
    return None


def _text_slot(choice: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    delta = choice.get("delta")
    if isinstance(delta, dict):
        return delta, "content"
    if "text" in choice:
        return choice, "text"
    return None, "content"
