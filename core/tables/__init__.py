"""SQLModel tables, one module per domain concept. Schema changes go through Alembic (`core/migrations`)."""

from core.tables.access import Budget, CostAlert, CostRollup, VirtualKey, VirtualKeyBase
from core.tables.batches import BatchFile, BatchJob
from core.tables.cache import CacheEntryRow
from core.tables.common import utc_now
from core.tables.judging import JudgeCacheEntry, JudgeCalibration, JudgeScore
from core.tables.releases import (
    Experiment,
    Feedback,
    PromptSource,
    ReleaseAudit,
    ReleaseLabel,
    ReleaseRevision,
)
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
from core.tables.signins import SignInAttempt
from core.tables.traffic import TrafficRecord, TrafficRecordBase, TrafficRecordPublic

__all__ = [
    "Baseline",
    "BaselinePublic",
    "BatchFile",
    "BatchJob",
    "Budget",
    "CacheEntryRow",
    "CaseResult",
    "CaseResultBase",
    "CostAlert",
    "CostRollup",
    "Experiment",
    "Feedback",
    "JudgeCacheEntry",
    "JudgeCalibration",
    "JudgeScore",
    "LatencyRollup",
    "PromptSource",
    "PromptVersion",
    "ReleaseAudit",
    "ReleaseLabel",
    "ReleaseRevision",
    "ReviewItem",
    "ReviewItemBase",
    "Run",
    "RunBase",
    "RunPublic",
    "SignInAttempt",
    "TrafficRecord",
    "TrafficRecordBase",
    "TrafficRecordPublic",
    "VirtualKey",
    "VirtualKeyBase",
    "utc_now",
]
