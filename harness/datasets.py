"""Datasets of test cases: `.jsonl`, `.csv` and `.parquet` files loaded into `Case` records.

Each row is one case:
- `id` (optional): a stable default is the first 12 hex chars of the sha256 of the row's canonical JSON
  (keys sorted), so a case keeps its id as long as its content does not change.
- `inputs`: an object of the variables the test renders its prompt with. Without an `inputs` key every other
  column (all but `id`, `expected` and `tags`) is an input.
- `expected` (optional): any JSON value the scorers compare against.
- `tags` (optional): a list of strings or one comma-separated string.

Problems are reported as one line naming the file and the line (JSONL, CSV) or row (Parquet).
CSV cells are strings (`dtype=str`, empty cells stay ''); an `inputs` cell must hold a JSON object, and an
`expected` cell holding a JSON object or array is parsed, any other `expected` cell stays a string.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from harness.errors import HarnessError

SUFFIXES: tuple[str, ...] = (".jsonl", ".csv", ".parquet")
RESERVED_KEYS: tuple[str, ...] = ("id", "inputs", "expected", "tags")


class DatasetError(HarnessError):
    """A dataset file is missing, unreadable or has a bad row; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Case:
    """One test case; `source` says where it came from, e.g. "datasets/x.jsonl:12"."""

    id: str
    inputs: dict[str, Any]
    expected: Any | None
    tags: tuple[str, ...]
    source: str


@dataclass(frozen=True, slots=True)
class Dataset:
    """The cases of one file; `sha256` is the hash of the file bytes (recorded with every run)."""

    path: Path
    sha256: str
    cases: list[Case]

    @property
    def name(self) -> str:
        """The file name without its extension."""
        return self.path.stem

    def __len__(self) -> int:
        return len(self.cases)

    def __iter__(self) -> Iterator[Case]:
        return iter(self.cases)

    def to_frame(self) -> Any:
        """The cases as a pandas DataFrame (columns id, inputs, expected, tags, source) for analysis."""
        import pandas as pd  # only analysis needs pandas' import time

        return pd.DataFrame(
            [(c.id, c.inputs, c.expected, list(c.tags), c.source) for c in self.cases],
            columns=["id", "inputs", "expected", "tags", "source"],
        )


_cache: dict[tuple[str, str], tuple[int, int, Dataset]] = {}
_cache_lock = threading.Lock()


def load_dataset(path: str | Path) -> Dataset:
    """Load a dataset file; loads are cached by (path, modification time, size)."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise DatasetError(f"{path}: unsupported dataset type {path.suffix!r} (use {', '.join(SUFFIXES)})")
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such dataset file") from None
    key = (str(path), str(path.resolve()))
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None and cached[:2] == (stat.st_mtime_ns, stat.st_size):
        return cached[2]
    dataset = _read(path)
    with _cache_lock:
        _cache[key] = (stat.st_mtime_ns, stat.st_size, dataset)
    return dataset


def clear_cache() -> None:
    """Forget every cached dataset."""
    with _cache_lock:
        _cache.clear()


def filter_cases(
    cases: Iterable[Case], tags: Iterable[str] | None = None, exclude_tags: Iterable[str] | None = None
) -> list[Case]:
    """The cases carrying at least one of `tags` (all when None) and none of `exclude_tags`."""
    wanted = None if tags is None else set(tags)
    unwanted = set(exclude_tags or ())
    return [
        case
        for case in cases
        if (wanted is None or wanted.intersection(case.tags)) and not unwanted.intersection(case.tags)
    ]


def _read(path: Path) -> Dataset:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read dataset ({exc.strerror})") from exc
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows, unit = _jsonl_rows(data, path), "line"
    elif suffix == ".csv":
        rows, unit = _csv_rows(path), "line"
    else:
        rows, unit = _parquet_rows(path), "row"
    if not rows:
        raise DatasetError(f"{path}: empty dataset (no cases)")
    return Dataset(path=path, sha256=hashlib.sha256(data).hexdigest(), cases=_cases(rows, path, unit, suffix))


def _jsonl_rows(data: bytes, path: Path) -> list[tuple[int, dict[str, Any]]]:
    rows: list[tuple[int, dict[str, Any]]] = []
    for number, line in enumerate(data.removeprefix(b"\xef\xbb\xbf").split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{number}: invalid JSON ({exc})") from exc
        if not isinstance(row, dict):
            raise DatasetError(f"{path}:{number}: a row must be a JSON object, got {type(row).__name__}")
        rows.append((number, row))
    return rows


def _csv_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        return []
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: invalid CSV ({str(exc).strip().splitlines()[0]})") from exc
    # Line 1 is the header; a cell holding a newline makes later numbers approximate.
    return [(index + 2, row) for index, row in enumerate(frame.to_dict(orient="records"))]


def _parquet_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    # pyarrow's to_pylist keeps ints as ints and nulls as None, which pandas would turn into NaN floats.
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(f"{path}: invalid Parquet file ({exc})") from exc
    return [(index + 1, row) for index, row in enumerate(table.to_pylist())]


def _cases(rows: list[tuple[int, dict[str, Any]]], path: Path, unit: str, suffix: str) -> list[Case]:
    cases: list[Case] = []
    first_seen: dict[str, int] = {}
    for number, row in rows:
        where = f"{path}:{number}"
        case = _case(row, where, from_csv=suffix == ".csv")
        if case.id in first_seen:
            explicit = _blank(row.get("id")) is not None
            reason = (
                f"duplicate id {case.id!r}" if explicit else "duplicate case (same content, give it an 'id')"
            )
            raise DatasetError(f"{where}: {reason} (first at {unit} {first_seen[case.id]})")
        first_seen[case.id] = number
        cases.append(case)
    return cases


def _case(row: dict[str, Any], where: str, from_csv: bool) -> Case:
    if "inputs" in row:
        inputs = row["inputs"]
        if from_csv and isinstance(inputs, str):
            inputs = _json_cell(inputs, where, "inputs")
        if not isinstance(inputs, dict):
            raise DatasetError(f"{where}: 'inputs' must be an object, got {type(inputs).__name__}")
        extra = [key for key in row if key not in RESERVED_KEYS]
        if extra:
            raise DatasetError(f"{where}: unexpected key {extra[0]!r} beside 'inputs' (move it into inputs)")
    else:
        inputs = {key: value for key, value in row.items() if key not in RESERVED_KEYS}
    expected = _blank(row.get("expected"))
    if from_csv and isinstance(expected, str) and expected.lstrip()[:1] in ("{", "["):
        try:
            expected = orjson.loads(expected)
        except orjson.JSONDecodeError:
            pass  # documented: such a cell stays a string
    return Case(
        id=_case_id(row, where),
        inputs=inputs,
        expected=expected,
        tags=_tags(row.get("tags"), where),
        source=where,
    )


def _case_id(row: dict[str, Any], where: str) -> str:
    ident = _blank(row.get("id"))
    if ident is None:
        content = {key: value for key, value in row.items() if key != "id"}
        return hashlib.sha256(_canonical_json(content, where)).hexdigest()[:12]
    if isinstance(ident, bool) or not isinstance(ident, str | int):
        raise DatasetError(f"{where}: 'id' must be a string or an integer, got {type(ident).__name__}")
    return str(ident)


def _canonical_json(value: Any, where: str) -> bytes:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except TypeError as exc:
        raise DatasetError(f"{where}: the row holds a value that is not JSON ({exc})") from exc


def _tags(value: Any, where: str) -> tuple[str, ...]:
    value = _blank(value)
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
        raise DatasetError(f"{where}: 'tags' must be a list of strings or a comma-separated string")
    return tuple(tag.strip() for tag in value if tag.strip())


def _json_cell(text: str, where: str, column: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise DatasetError(f"{where}: '{column}' is not valid JSON ({exc})") from exc


def _blank(value: Any) -> Any:
    """None for a missing value: absent, null, or an empty CSV cell."""
    return None if value is None or value == "" else value
