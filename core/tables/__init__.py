"""SQLModel tables, one module per domain concept. Schema changes go through Alembic (`core/migrations`)."""

from core.tables.batches import BatchFile, BatchJob
from core.tables.cache import CacheEntryRow
from core.tables.common import utc_now
from core.tables.reviews import ReviewItem, ReviewItemBase
from core.tables.rollups import LatencyRollup
from core.tables.runs import (
    Baseline,
    BaselinePublic,
    CaseResult,
    CaseResultBase,
    PromptVersion,
    Run,
    RunBase,
    RunPublic,
)
from core.tables.traffic import TrafficRecord, TrafficRecordBase, TrafficRecordPublic

__all__ = [
    "Baseline",
    "BaselinePublic",
    "BatchFile",
    "BatchJob",
    "CacheEntryRow",
    "CaseResult",
    "CaseResultBase",
    "LatencyRollup",
    "PromptVersion",
    "ReviewItem",
    "ReviewItemBase",
    "Run",
    "RunBase",
    "RunPublic",
    "TrafficRecord",
    "TrafficRecordBase",
    "TrafficRecordPublic",
    "utc_now",
]
