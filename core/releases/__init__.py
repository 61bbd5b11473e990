"""Releases: labels on prompt versions and model choices, the promotion gate, rollouts, experiments and feedback.

The CLI (`tollgate release`), the admin API and the dashboard all call these functions:

```python
engine = open_database(settings.resolved_database_url)
registry = PromptRegistry(settings.releases.prompts_dir)
promote(engine, "booking_extract", version="current", policy=settings.releases.gate, registry=registry)
set_canary(engine, "booking_extract", version="1a2b3c4d5e6f", weight=0.05, registry=registry)
rollback(engine, "booking_extract", reason="canary error rate")
compare_variants(engine, prompt_name="booking_extract")
```
"""

from core.releases.assignment import bucket, choose_arm
from core.releases.comparisons import (
    OutcomeComparison,
    OutcomeSummary,
    ShadowPair,
    VariantSummary,
    compare_variants,
    experiment_outcomes,
    shadow_pairs,
)
from core.releases.errors import GateRefused, ReleaseError
from core.releases.experiments import (
    ArmSpec,
    ExperimentInfo,
    list_experiments,
    record_feedback,
    start_experiment,
    stop_experiment,
)
from core.releases.gate import GateCheck, GateDecision, evaluate_gate, latest_run_for
from core.releases.labels import (
    AuditEntry,
    LabelState,
    ReleaseChange,
    Target,
    audit_log,
    clear_label,
    promote,
    release_status,
    resolve_target,
    rollback,
    set_canary,
    set_shadow,
    store_prompt_source,
)
from core.releases.snapshot import (
    Arm,
    ExperimentSpec,
    ReleaseSnapshot,
    SubjectState,
    load_snapshot,
    read_revision,
)
from core.releases.subjects import SUBJECT_MAX_CHARS, InvalidSubject, check_subject

__all__ = [
    "SUBJECT_MAX_CHARS",
    "Arm",
    "ArmSpec",
    "AuditEntry",
    "ExperimentInfo",
    "ExperimentSpec",
    "GateCheck",
    "GateDecision",
    "GateRefused",
    "InvalidSubject",
    "LabelState",
    "OutcomeComparison",
    "OutcomeSummary",
    "ReleaseChange",
    "ReleaseError",
    "ReleaseSnapshot",
    "ShadowPair",
    "SubjectState",
    "Target",
    "VariantSummary",
    "audit_log",
    "bucket",
    "check_subject",
    "choose_arm",
    "clear_label",
    "compare_variants",
    "evaluate_gate",
    "experiment_outcomes",
    "latest_run_for",
    "list_experiments",
    "load_snapshot",
    "promote",
    "read_revision",
    "record_feedback",
    "release_status",
    "resolve_target",
    "rollback",
    "set_canary",
    "set_shadow",
    "shadow_pairs",
    "start_experiment",
    "stop_experiment",
    "store_prompt_source",
]
