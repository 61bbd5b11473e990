"""The sidecar's traffic log: `RawTraffic` from the request path, `TrafficLog` storing it off that path."""

from sidecar.traffic.finaliser import RecordFinaliser
from sidecar.traffic.record import ERROR_CLASSES, RawTraffic, TrafficRow
from sidecar.traffic.spool import ReplayResult, Spool
from sidecar.traffic.writer import TrafficLog, TrafficStats

__all__ = [
    "ERROR_CLASSES",
    "RawTraffic",
    "RecordFinaliser",
    "ReplayResult",
    "Spool",
    "TrafficLog",
    "TrafficRow",
    "TrafficStats",
]
