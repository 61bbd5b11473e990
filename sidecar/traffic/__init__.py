"""The sidecar's traffic log: `RawTraffic` from the request path, stored off that path.

`create_traffic_log(settings)` builds the log the sidecar uses: by default `ProcessTrafficLog`, whose
writer is a child process, or with `traffic.writer: thread` the in-process `TrafficLog`.

Names are imported on first use, so the request path's `from sidecar.traffic.record import RawTraffic`
does not load SQLAlchemy, the tables or the price book into the sidecar process.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Protocol, Self

if TYPE_CHECKING:
    from core.settings import Settings
    from sidecar.traffic.finaliser import RecordFinaliser
    from sidecar.traffic.process import ProcessTrafficLog
    from sidecar.traffic.record import ERROR_CLASSES, RawTraffic, TrafficRow
    from sidecar.traffic.spool import ReplayResult, Spool
    from sidecar.traffic.stats import ProcessTrafficStats, TrafficStats
    from sidecar.traffic.writer import TrafficLog

_EXPORTS: dict[str, str] = {
    "ERROR_CLASSES": "sidecar.traffic.record",
    "ProcessTrafficLog": "sidecar.traffic.process",
    "ProcessTrafficStats": "sidecar.traffic.stats",
    "RawTraffic": "sidecar.traffic.record",
    "RecordFinaliser": "sidecar.traffic.finaliser",
    "ReplayResult": "sidecar.traffic.spool",
    "Spool": "sidecar.traffic.spool",
    "TrafficLog": "sidecar.traffic.writer",
    "TrafficRow": "sidecar.traffic.record",
    "TrafficStats": "sidecar.traffic.stats",
}

__all__ = [
    "ERROR_CLASSES",
    "ProcessTrafficLog",
    "ProcessTrafficStats",
    "RawTraffic",
    "RecordFinaliser",
    "ReplayResult",
    "Spool",
    "TrafficLog",
    "TrafficRow",
    "TrafficSink",
    "TrafficStats",
    "create_traffic_log",
]


class TrafficSink(Protocol):
    """What the sidecar needs of a traffic log."""

    def submit(self, raw: RawTraffic) -> None: ...

    def admits(self) -> bool:
        """False while the log's memory buffer is full (the sidecar then applies `traffic.when_full`)."""
        ...

    def start(self) -> Self: ...

    def close(self, timeout: float | None = None) -> None: ...

    async def aclose(self) -> None: ...

    @property
    def stats(self) -> TrafficStats: ...


def create_traffic_log(settings: Settings) -> TrafficSink:
    """The traffic log `settings.traffic.writer` asks for (not started)."""
    if settings.traffic.writer == "thread":
        from sidecar.traffic.writer import TrafficLog

        return TrafficLog(settings)
    from sidecar.traffic.process import ProcessTrafficLog

    return ProcessTrafficLog(settings)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sidecar.traffic' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
