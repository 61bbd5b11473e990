"""The results of a benchmark run: one `LevelResult` per concurrency level or rate, inside a `BenchRun`.

Both convert to and from JSON-ready data; that data is the stored file format (see `storage`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.bench.errors import BenchError
from harness.bench.stats import restore_nans
from harness.bench.timing import RequestRecord

FORMAT_VERSION = 1
RECORD_FIELDS: tuple[str, ...] = (
    "index", "level", "scheduled_s", "queue_ms", "ttft_ms", "e2e_ms", "itl_ms", "tokens_in", "tokens_out",
    "status", "error",
)


@dataclass(slots=True)
class LevelResult:
    """One load level: `label` names it (`c=4`, `rate=2.5`) and is how levels are matched to a baseline."""

    label: str
    mode: str
    concurrency: int | None
    rate: float | None
    duration_s: float
    summary: dict[str, float]
    records: list[RequestRecord] = field(default_factory=list)

    def to_dict(self, *, with_records: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "label": self.label, "mode": self.mode, "concurrency": self.concurrency, "rate": self.rate,
            "duration_s": self.duration_s, "summary": self.summary,
        }
        if with_records:
            data["records"] = [record_to_dict(r) for r in self.records]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LevelResult:
        return cls(
            label=str(data["label"]), mode=str(data["mode"]), concurrency=data.get("concurrency"),
            rate=data.get("rate"), duration_s=float(data["duration_s"]),
            summary=restore_nans(data["summary"]),
            records=[record_from_dict(r) for r in data.get("records") or ()],
        )


@dataclass(slots=True)
class BenchRun:
    """A whole run: settings and provenance in `meta`, then its levels in order."""

    meta: dict[str, Any]
    levels: list[LevelResult]

    def level(self, label: str) -> LevelResult | None:
        return next((level for level in self.levels if level.label == label), None)

    @property
    def records(self) -> list[RequestRecord]:
        return [record for level in self.levels for record in level.records]

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT_VERSION, "meta": self.meta, "levels": [level.to_dict() for level in self.levels]}

    @classmethod
    def from_dict(cls, data: Any, where: str = "bench results") -> BenchRun:
        if not isinstance(data, dict) or data.get("format") != FORMAT_VERSION or "levels" not in data:
            raise BenchError(f"{where}: not a tollgate bench result (format {FORMAT_VERSION})")
        try:
            return cls(meta=dict(data.get("meta") or {}), levels=[LevelResult.from_dict(x) for x in data["levels"]])
        except (KeyError, TypeError, ValueError) as exc:
            raise BenchError(f"{where}: malformed bench result ({exc.__class__.__name__}: {exc})") from exc


def record_to_dict(record: RequestRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in RECORD_FIELDS}


def record_from_dict(data: dict[str, Any]) -> RequestRecord:
    return RequestRecord(**{name: data[name] for name in RECORD_FIELDS if name in data})
