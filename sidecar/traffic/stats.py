"""Counters the traffic logs report (in `/readyz` and to the benchmark)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class TrafficStats:
    """Counters since start. Every submitted record is eventually written, spooled or failed;
    `replayed` counts spooled rows later moved into the database.

    `unwritable` (a gauge) is the rows held in memory because neither the database nor the spool takes
    them; `shed` counts requests served unlogged (`when_full: shed`) and `refused` the requests answered
    503 `traffic_log_full` (`when_full: refuse`); neither is in `submitted`.
    """

    submitted: int = 0
    written: int = 0
    spooled: int = 0
    replayed: int = 0
    failed: int = 0
    queue_depth: int = 0
    unwritable: int = 0
    shed: int = 0
    refused: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters by name (for health and metrics endpoints)."""
        return dataclasses.asdict(self)


@dataclass(slots=True, frozen=True)
class ProcessTrafficStats(TrafficStats):
    """`TrafficStats` of a log whose writer is a child process, merged from both sides.

    `written`, `replayed` and most of `spooled` and `failed` are the child's (reported with each
    acknowledgement); `spooled_in_parent` is the part of `spooled` the sidecar wrote itself (overflow,
    or batches a dead child had not acknowledged). `queue_depth` includes `in_flight`: records sent to
    the child and not yet acknowledged as stored.
    """

    sent: int = 0
    in_flight: int = 0
    overflowed: int = 0
    spooled_in_parent: int = 0
    writer_restarts: int = 0
