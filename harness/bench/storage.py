"""Bench results on disk: JSON (the whole run), CSV (one row per request), and the run history.

Layout under the data directory (`.tollgate/` by default):
  bench/<UTC timestamp>.json        every run, kept
  bench/baselines/<name>.json       named baselines (`--save NAME`), overwritten when saved again
A reference to compare against is a file path, a baseline name, or `latest` (the newest stored run).
"""

from __future__ import annotations

import csv
import math
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from core.tables import utc_now
from harness.bench.errors import BenchError
from harness.bench.results import RECORD_FIELDS, BenchRun
from harness.bench.timing import RequestRecord

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_INT_FIELDS = frozenset({"index", "tokens_in", "tokens_out", "status"})
_FLOAT_FIELDS = frozenset({"scheduled_s", "queue_ms", "ttft_ms", "e2e_ms"})
_ITL_SEPARATOR = " "


def write_json(run: BenchRun, path: str | Path) -> Path:
    """The whole run (settings, summaries, every request) as JSON; NaN is written as null."""
    target = Path(path)
    _write(target, orjson.dumps(run.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY))
    return target


def read_json(path: str | Path) -> BenchRun:
    source = Path(path)
    try:
        data = orjson.loads(source.read_bytes())
    except OSError as exc:
        raise BenchError(f"{source}: cannot read bench results ({exc.strerror})") from exc
    except orjson.JSONDecodeError as exc:
        raise BenchError(f"{source}: not valid JSON ({exc})") from exc
    return BenchRun.from_dict(data, str(source))


def write_csv(run: BenchRun, path: str | Path) -> Path:
    """One row per request with the record's fields plus `tpot_ms`; `itl_ms` holds space-separated gaps."""
    target = Path(path)
    try:
        with target.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow([*RECORD_FIELDS, "tpot_ms"])
            for record in run.records:
                writer.writerow([_cell(getattr(record, name)) for name in RECORD_FIELDS] + [_cell(record.tpot_ms)])
    except OSError as exc:
        raise BenchError(f"{target}: cannot write ({exc.strerror})") from exc
    return target


def read_csv(path: str | Path) -> list[RequestRecord]:
    """The request rows of a CSV written by `write_csv`."""
    source = Path(path)
    try:
        with source.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise BenchError(f"{source}: cannot read ({exc.strerror})") from exc
    try:
        return [RequestRecord(**{name: _parse(name, row[name]) for name in RECORD_FIELDS}) for row in rows]
    except (KeyError, ValueError) as exc:
        raise BenchError(f"{source}: not a bench CSV ({exc.__class__.__name__}: {exc})") from exc


def store_run(run: BenchRun, data_dir: str | Path, now: datetime | None = None) -> Path:
    """Keep the run in the history as `bench/<timestamp>.json`; returns the file written."""
    folder = Path(data_dir) / "bench"
    stamp = (now or utc_now()).strftime("%Y%m%dT%H%M%SZ")
    target = folder / f"{stamp}.json"
    suffix = 1
    while target.exists():  # two runs within one second keep both
        suffix += 1
        target = folder / f"{stamp}-{suffix}.json"
    return write_json(run, target)


def save_baseline(run: BenchRun, data_dir: str | Path, name: str) -> Path:
    """Store the run as the named baseline (replacing one of the same name)."""
    if not _NAME.match(name):
        raise BenchError(f"bad baseline name {name!r}: use letters, digits, '.', '_' or '-'")
    return write_json(run, Path(data_dir) / "bench" / "baselines" / f"{name}.json")


def load_reference(ref: str, data_dir: str | Path) -> BenchRun:
    """A run from a file path, a baseline name or `latest`."""
    folder = Path(data_dir) / "bench"
    if ref == "latest":
        runs = sorted(folder.glob("*.json"), key=_history_order)
        if not runs:
            raise BenchError(f"no stored bench runs in {folder}")
        return read_json(runs[-1])
    path = Path(ref)
    if path.suffix == ".json" or path.exists():
        if not path.is_file():
            raise BenchError(f"{path}: no such bench results file")
        return read_json(path)
    named = folder / "baselines" / f"{ref}.json"
    if named.is_file():
        return read_json(named)
    known = sorted(p.stem for p in (folder / "baselines").glob("*.json"))
    hint = f" (known: {', '.join(known)})" if known else " (none saved yet: use --save NAME)"
    raise BenchError(f"no bench baseline named {ref!r}{hint}")


def _history_order(path: Path) -> tuple[str, int]:
    """Oldest first: by timestamp, then by the `-N` suffix of runs stored within the same second."""
    stamp, _, suffix = path.stem.partition("-")
    return stamp, int(suffix) if suffix.isdigit() else 1


def _write(target: Path, data: bytes) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    except OSError as exc:
        raise BenchError(f"{target}: cannot write ({exc.strerror})") from exc


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list):
        return _ITL_SEPARATOR.join(repr(v) for v in value)
    if isinstance(value, float) and math.isnan(value):
        return ""
    return value


def _parse(name: str, text: str) -> Any:
    if name == "itl_ms":
        return [float(part) for part in text.split(_ITL_SEPARATOR) if part]
    if text == "":
        return None
    if name in _INT_FIELDS:
        return int(text)
    if name in _FLOAT_FIELDS:
        return float(text)
    return text
