"""What a model call returned (`LLMResult`) and what a scorer made of it (`Score`).

These two records cross every boundary of the harness: scorers read `LLMResult`, the run store writes both as
JSON, and the gate reads `Score` back. They are plain slotted dataclasses so that creating thousands per run
costs little, and each round-trips through `to_dict` / `from_dict` without loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

_RESULT_REQUIRED = ("text", "latency_ms")
_SCORE_REQUIRED = ("name", "value", "passed", "threshold")


def _require(data: dict[str, Any], keys: tuple[str, ...], kind: str) -> None:
    """Fail with one readable message naming every missing key."""
    if not isinstance(data, dict):
        raise TypeError(f"{kind} must be a mapping, got {type(data).__name__}")
    missing = [key for key in keys if key not in data]
    if missing:
        raise ValueError(f"{kind} is missing required key(s): {', '.join(missing)}")


@dataclass(slots=True)
class LLMResult:
    """One model call made through the sidecar (or replayed from a recording).

    `cost_usd` is None when the price of the model is unknown; it is never silently 0.
    `error` holds a one-line reason when the call failed, and then `text` is ''.
    """

    text: str
    model: str | None
    latency_ms: float
    ttft_ms: float | None
    tokens_in: int | None
    tokens_out: int | None
    cost_usd: float | None
    error: str | None = None
    replayed: bool = False
    request_hash: str | None = None
    raw: dict[str, Any] | None = None

    def json(self) -> Any:
        """Parse `text` as JSON.

        Raises ValueError with a message that names the problem and shows the start of the text.
        """
        try:
            return orjson.loads(self.text)
        except orjson.JSONDecodeError as exc:
            preview = self.text[:80] + ("…" if len(self.text) > 80 else "")
            raise ValueError(f"model output is not valid JSON ({exc}): {preview!r}") from exc

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return {
            "text": self.text,
            "model": self.model,
            "latency_ms": self.latency_ms,
            "ttft_ms": self.ttft_ms,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost_usd": self.cost_usd,
            "error": self.error,
            "replayed": self.replayed,
            "request_hash": self.request_hash,
            "raw": self.raw,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LLMResult:
        """Rebuild a result from `to_dict` output; optional keys may be absent, unknown keys are ignored."""
        _require(data, _RESULT_REQUIRED, "LLMResult")
        return cls(
            text=data["text"],
            model=data.get("model"),
            latency_ms=float(data["latency_ms"]),
            ttft_ms=data.get("ttft_ms"),
            tokens_in=data.get("tokens_in"),
            tokens_out=data.get("tokens_out"),
            cost_usd=data.get("cost_usd"),
            error=data.get("error"),
            replayed=bool(data.get("replayed", False)),
            request_hash=data.get("request_hash"),
            raw=data.get("raw"),
        )


@dataclass(slots=True)
class Score:
    """One scorer's verdict on one result.

    `value` is in 0..1, or None when the scorer could not score (then `passed` is None and `error` says why);
    unscored results are kept out of pass-rate denominators.
    """

    name: str
    value: float | None
    passed: bool | None
    threshold: float
    args: dict[str, Any]
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def scored(self) -> bool:
        """True when the scorer produced a value."""
        return self.value is not None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return {
            "name": self.name,
            "value": self.value,
            "passed": self.passed,
            "threshold": self.threshold,
            "args": self.args,
            "error": self.error,
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Score:
        """Rebuild a score from `to_dict` output; optional keys may be absent, unknown keys are ignored."""
        _require(data, _SCORE_REQUIRED, "Score")
        value = data["value"]
        return cls(
            name=data["name"],
            value=None if value is None else float(value),
            passed=data["passed"],
            threshold=float(data["threshold"]),
            args=dict(data.get("args") or {}),
            error=data.get("error"),
            details=dict(data.get("details") or {}),
        )
