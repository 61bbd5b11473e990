"""How the fake upstream behaves: latency, output size and the fault it injects.

A `FakeBehaviour` is an immutable value. The server keeps one as its defaults and derives per-request
behaviours from it by patching fields: from the one-shot script queue, or from the `X-Fake-Fault` header.
Patches are validated by pydantic, so a test that misspells a field gets a clear error instead of silence.
"""

from __future__ import annotations

import dataclasses
import enum
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any

import orjson
import pydantic
from pydantic import Field, TypeAdapter

from core.errors import TollgateError
from sidecar.fake_upstream.framing import SseStyle

FAULT_HEADER = "X-Fake-Fault"


class FakeUpstreamError(TollgateError):
    """A behaviour, patch or fault specification is invalid; the message names the field."""


class Fault(enum.StrEnum):
    """A failure the fake upstream injects instead of (or in the middle of) a normal answer."""

    NONE = "none"
    STATUS = "status"  # answer `status` with an OpenAI-shaped error body (429 adds Retry-After)
    RESET = "reset"  # reset the TCP connection (RST) without sending anything
    CUT = "cut"  # stream: send `cut_after` events then close; non-stream: headers + half the body
    HANG = "hang"  # read the request and never answer, until the client gives up
    GARBAGE = "garbage"  # 200 with a body that is not JSON (or SSE events that are not JSON)
    SLOW_FIRST_BYTE = "slow_first_byte"  # wait `slow_first_byte_s` before sending headers, then answer


NonNegativeFloat = Annotated[float, Field(ge=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]


@dataclass(frozen=True, slots=True)
class FakeBehaviour:
    """Latency, output and fault settings of the fake upstream (all times in seconds).

    Generation timing: the first token is ready `ttft_s` after the request, each further token
    `inter_token_s` later; a non-streamed answer is sent when the last token is ready.
    """

    ttft_s: NonNegativeFloat = 0.0
    inter_token_s: NonNegativeFloat = 0.0
    output_tokens: NonNegativeInt = 16
    embedding_dim: Annotated[int, Field(ge=1, le=65536)] = 8
    reply: str | None = None  # fixed answer text instead of the echo of the prompt
    models: tuple[str, ...] = ("fake-model",)
    fault: Fault = Fault.NONE
    status: Annotated[int, Field(ge=100, le=599)] = 500
    retry_after_s: NonNegativeInt = 1
    cut_after: NonNegativeInt = 2
    slow_first_byte_s: NonNegativeFloat = 1.0
    sse_style: SseStyle = SseStyle.CANONICAL  # the framing of streamed events (see `framing`)

    def patched(self, changes: Mapping[str, Any]) -> FakeBehaviour:
        """A copy with `changes` applied and validated; raises `FakeUpstreamError` on a bad field."""
        if not changes:
            return self
        unknown = sorted(set(changes) - _FIELD_NAMES)
        if unknown:
            raise FakeUpstreamError(f"unknown behaviour field(s): {', '.join(unknown)}")
        try:
            return _ADAPTER.validate_python({**_as_dict(self), **changes})
        except pydantic.ValidationError as exc:
            raise FakeUpstreamError(_describe(exc)) from exc

    def to_dict(self) -> dict[str, Any]:
        """The behaviour as JSON-ready data (the shape `patched` accepts)."""
        data = _as_dict(self)
        data["models"] = list(self.models)
        data["fault"] = self.fault.value
        data["sse_style"] = self.sse_style.value
        return data


_FIELD_NAMES = frozenset(field.name for field in dataclasses.fields(FakeBehaviour))
# Unknown keys are rejected by `patched` itself, with a message naming them.
_ADAPTER: TypeAdapter[FakeBehaviour] = TypeAdapter(FakeBehaviour)

# The field that the short `name:value` fault form sets, for the faults that take an argument.
_FAULT_ARGUMENT = {
    Fault.STATUS: "status",
    Fault.CUT: "cut_after",
    Fault.SLOW_FIRST_BYTE: "slow_first_byte_s",
}


def _as_dict(behaviour: FakeBehaviour) -> dict[str, Any]:
    return {name: getattr(behaviour, name) for name in _FIELD_NAMES}


def _describe(exc: pydantic.ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in err['loc']) or 'behaviour'}: {err['msg']}" for err in exc.errors()]
    return "invalid behaviour: " + "; ".join(parts)


def parse_fault_spec(spec: str) -> dict[str, Any]:
    """Turn a fault specification into a behaviour patch.

    Accepted forms: a fault name (`reset`, `hang`, `none`), `name:value` for the faults that take an
    argument (`status:503`, `cut:3`, `slow_first_byte:0.5`), or a JSON object patching any field
    (`{"fault": "status", "status": 429, "retry_after_s": 2}`).
    """
    spec = spec.strip()
    if spec.startswith("{"):
        try:
            decoded = orjson.loads(spec)
        except orjson.JSONDecodeError as exc:
            raise FakeUpstreamError(f"fault specification is not valid JSON: {exc}") from exc
        if not isinstance(decoded, dict):
            raise FakeUpstreamError("fault specification must be a JSON object")
        return decoded
    name, _, argument = spec.partition(":")
    try:
        fault = Fault(name.strip().lower())
    except ValueError as exc:
        choices = ", ".join(f.value for f in Fault)
        raise FakeUpstreamError(f"unknown fault {name!r} (choose from {choices})") from exc
    patch: dict[str, Any] = {"fault": fault.value}
    if argument:
        field = _FAULT_ARGUMENT.get(fault)
        if field is None:
            raise FakeUpstreamError(f"fault {fault.value!r} takes no argument")
        patch[field] = argument.strip()
    return patch


@lru_cache(maxsize=256)
def _behaviour_for_header(defaults: FakeBehaviour, header: str) -> FakeBehaviour:
    # Cached: a benchmark sending the same header on every request pays the validation once.
    return defaults.patched(parse_fault_spec(header))


class BehaviourState:
    """The server's current defaults and the queue of one-shot behaviours.

    Touched only from the server's event loop (the thread runner marshals its calls there).
    """

    def __init__(self, initial: FakeBehaviour) -> None:
        self.initial = initial
        self.defaults = initial
        self._script: deque[FakeBehaviour | dict[str, Any]] = deque()

    @property
    def pending(self) -> int:
        """How many one-shot behaviours are still queued."""
        return len(self._script)

    def update(self, changes: Mapping[str, Any]) -> FakeBehaviour:
        """Patch the defaults (validated) and return the new defaults."""
        self.defaults = self.defaults.patched(changes)
        return self.defaults

    def enqueue(self, entries: list[FakeBehaviour | Mapping[str, Any]]) -> int:
        """Queue one-shot behaviours; a mapping patches the defaults in force when it is consumed."""
        checked: list[FakeBehaviour | dict[str, Any]] = []
        for entry in entries:
            if isinstance(entry, FakeBehaviour):
                checked.append(entry)
            elif isinstance(entry, Mapping):
                self.defaults.patched(entry)  # validate now, so the error reaches the caller
                checked.append(dict(entry))
            else:
                raise FakeUpstreamError(f"a script entry must be an object, got {type(entry).__name__}")
        self._script.extend(checked)
        return len(self._script)

    def reset(self) -> None:
        """Back to the behaviour given at start, with an empty script."""
        self.defaults = self.initial
        self._script.clear()

    def resolve(self, header: str | None) -> FakeBehaviour:
        """The behaviour of one request: the header wins (and leaves the script alone), then the script."""
        if header is not None:
            return _behaviour_for_header(self.defaults, header)
        if self._script:
            entry = self._script.popleft()
            return entry if isinstance(entry, FakeBehaviour) else self.defaults.patched(entry)
        return self.defaults
