"""What the sidecar and its writer process say to each other over their two pipes.

Sidecar to child: one `Hello` (the settings), then batches of `RawTraffic`. A batch is pickled as
plain tuples of the record's fields: `operator.attrgetter` builds each tuple in C and pickle copies
bytes bodies as they are, so encoding costs about 2 µs a record on the sender thread (orjson would
need the bytes decoded or base64-encoded first: 3-4 µs and twice the size). Both ends are the same
code and the pipe is private to the two processes, so pickle's trust model holds.

Child to sidecar: small orjson messages, each carrying the child's cumulative counters and, for a
stored batch, its sequence number (the acknowledgement).
"""

from __future__ import annotations

import dataclasses
import operator
import pickle
from dataclasses import dataclass
from typing import Any

import orjson

from core.settings import Settings
from sidecar.traffic.record import RawTraffic

# Every field but `row_id`, which is derived from the batch on decoding (see `decode_batch`).
_WIRE_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(RawTraffic) if f.name != "row_id")
_fields_of = operator.attrgetter(*_WIRE_FIELDS)

CHILD_COUNTERS: tuple[str, ...] = ("written", "spooled", "replayed", "failed", "unwritable")
"""The child's counters, in the order `Report.counters` holds them (`unwritable` is a gauge)."""


@dataclass(slots=True, frozen=True)
class Hello:
    """The first message to a new child: what it needs to build its `TrafficLog`."""

    settings: Settings
    log_level: int
    migrated: bool = False  # an earlier child opened the database at the latest schema: skip Alembic


@dataclass(slots=True, frozen=True)
class Batch:
    """Records to store. Row ids are `id_prefix` + the record's number, 16 hex digits."""

    sequence: int
    id_prefix: str
    first_number: int
    records: list[RawTraffic]


@dataclass(slots=True, frozen=True)
class Report:
    """A message from the child: its counters, and which batch it has just stored (if any)."""

    counters: tuple[int, ...]
    acknowledged: int | None = None
    ready: bool = False
    migrated: bool = False  # with `ready`: the database is open and at the latest schema


def encode_hello(hello: Hello) -> bytes:
    return pickle.dumps(hello, protocol=pickle.HIGHEST_PROTOCOL)


def decode_hello(payload: bytes) -> Hello:
    hello = pickle.loads(payload)
    if not isinstance(hello, Hello):
        raise TypeError(f"expected Hello, got {type(hello).__name__}")
    return hello


def encode_batch(sequence: int, id_prefix: str, first_number: int, records: list[RawTraffic]) -> bytes:
    """One batch as bytes; the records can be dropped right after (the bytes keep everything)."""
    rows = [_fields_of(raw) for raw in records]
    return pickle.dumps((sequence, id_prefix, first_number, rows), protocol=pickle.HIGHEST_PROTOCOL)


def decode_batch(payload: bytes) -> Batch:
    """The batch, with each record's `row_id` set: decoding twice gives the same ids."""
    sequence, id_prefix, first_number, rows = pickle.loads(payload)
    records = [
        RawTraffic(*fields, row_id=f"{id_prefix}{first_number + index:016x}")  # type: ignore[misc]
        for index, fields in enumerate(rows)
    ]
    return Batch(sequence, id_prefix, first_number, records)


def encode_report(report: Report) -> bytes:
    message: dict[str, Any] = {"counters": report.counters}
    if report.acknowledged is not None:
        message["ack"] = report.acknowledged
    if report.ready:
        message["ready"] = True
    if report.migrated:
        message["migrated"] = True
    return orjson.dumps(message)


def decode_report(payload: bytes) -> Report:
    message = orjson.loads(payload)
    counters = tuple(int(value) for value in message["counters"])
    if len(counters) != len(CHILD_COUNTERS):
        raise ValueError(f"expected {len(CHILD_COUNTERS)} counters, got {len(counters)}")
    return Report(counters, message.get("ack"), bool(message.get("ready")), bool(message.get("migrated")))
