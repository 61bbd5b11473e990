"""The promotion gate: may this version become `production`?

The gate reads the latest finished suite run that used the version (the harness records each run's prompt
versions, models, per-suite scores, cost and latency summaries and, when it compared the run with a baseline,
each suite's verdict). It passes only when every check below passes:

- `run`: such a run exists (a version nobody evaluated is never promoted);
- `exit_status`: the run's tests passed and its own baseline comparison did not fail it;
- per suite that used the prompt: `regression` (verdict is not a significant regression), `min_score` (the
  suite's own floor and the policy's), `cost` and `latency` budgets from `GatePolicySettings`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from core.config.releases import GatePolicySettings
from core.tables.runs import RUN_FINISHED, Run

_SCAN_BATCH = 200


@dataclass(frozen=True, slots=True)
class GateCheck:
    """One condition of the gate, with what was found."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True, slots=True)
class GateDecision:
    """The gate's answer for one version (and model), with every check it made."""

    subject: str
    version: str | None
    model: str | None
    run_id: str | None
    run_started_at: datetime | None
    checks: tuple[GateCheck, ...]

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(check.passed for check in self.checks)

    def summary(self) -> str:
        """`passed (run 1a2b3c4d)` or the failed checks, one clause each."""
        if self.passed:
            return f"passed (run {(self.run_id or '')[:8]})"
        return "; ".join(f"{check.name}: {check.detail}" for check in self.checks if not check.passed)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = self.passed
        data["run_started_at"] = self.run_started_at.isoformat() if self.run_started_at else None
        return data


def evaluate_gate(
    engine: Engine,
    subject: str,
    *,
    version: str | None,
    model: str | None = None,
    policy: GatePolicySettings | None = None,
    now: datetime | None = None,
) -> GateDecision:
    """Check the latest finished run that used `subject` at `version` (and `model`, when given)."""
    policy = policy or GatePolicySettings()
    run = latest_run_for(engine, subject, version=version, model=model)
    if run is None:
        what = f"version {version}" if version else f"model {model}"
        check = GateCheck("run", False, f"no finished suite run used {subject} {what}")
        return GateDecision(subject, version, model, None, None, (check,))
    started = _utc(run.started_at)
    checks = [GateCheck("run", True, f"run {run.id[:8]} started {started:%Y-%m-%d %H:%M} UTC")]
    if policy.max_run_age_days is not None:
        age = (now or datetime.now(UTC)) - started
        ok = age <= timedelta(days=policy.max_run_age_days)
        checks.append(GateCheck("run_age", ok, f"{age.days} days old (max {policy.max_run_age_days:g})"))
    status = run.exit_status
    checks.append(GateCheck("exit_status", status == 0, "tests and comparison passed" if status == 0
                            else f"the run exited with status {status} (tests failed or its gate failed)"))
    for suite, summary in sorted(_relevant_suites(run, subject, version is not None).items()):
        checks.extend(_suite_checks(suite, summary, policy))
    return GateDecision(subject, version, model, run.id, started, tuple(checks))


def latest_run_for(engine: Engine, subject: str, *, version: str | None, model: str | None = None) -> Run | None:
    """The most recent finished run whose prompt versions hold `subject: version` (and that used `model`)."""
    query = select(Run).where(Run.status == RUN_FINISHED).order_by(col(Run.started_at).desc(), col(Run.id))
    offset = 0
    with Session(engine) as session:
        while True:
            batch = session.exec(query.offset(offset).limit(_SCAN_BATCH)).all()
            for run in batch:
                if version is not None and (run.prompt_versions or {}).get(subject) != version:
                    continue
                if model is not None and model not in (run.models or {}):
                    continue
                session.expunge(run)
                return run
            if len(batch) < _SCAN_BATCH:
                return None
            offset += _SCAN_BATCH


def _relevant_suites(run: Run, subject: str, by_prompt: bool) -> dict[str, Mapping[str, Any]]:
    suites = {name: summary for name, summary in (run.suites or {}).items() if isinstance(summary, Mapping)}
    if by_prompt:
        using = {name: summary for name, summary in suites.items() if summary.get("prompt") == subject}
        if using:
            return using
    return suites


def _suite_checks(suite: str, summary: Mapping[str, Any], policy: GatePolicySettings) -> list[GateCheck]:
    checks: list[GateCheck] = []
    verdict = summary.get("verdict")
    if verdict == "regression":
        checks.append(GateCheck(f"{suite}.regression", False, "significant regression against the baseline"))
    elif verdict is None and policy.require_comparison:
        checks.append(GateCheck(f"{suite}.regression", False, "the run was not compared with a baseline"))
    else:
        checks.append(GateCheck(f"{suite}.regression", True, f"verdict {verdict or 'not compared'}"))
    score = summary.get("score")
    floor = max((f for f in ((summary.get("gate") or {}).get("min_score"), policy.min_score) if f is not None),
                default=None)
    if floor is not None:
        ok = score is not None and score >= floor and not summary.get("below_min_score")
        shown = "unscored" if score is None else f"{score:.3f}"
        checks.append(GateCheck(f"{suite}.min_score", ok, f"score {shown} (min {floor:g})"))
    elif summary.get("below_min_score"):
        checks.append(GateCheck(f"{suite}.min_score", False, "below the suite's min_score"))
    if policy.max_cost_per_case_usd is not None:
        cost, cases = summary.get("cost_usd"), summary.get("results") or summary.get("cases") or 0
        if cost is None or not cases or summary.get("cost_unknown"):
            checks.append(GateCheck(f"{suite}.cost", False, "cost unknown for some cases (no price configured)"))
        else:
            per_case = float(cost) / cases
            ok = per_case <= policy.max_cost_per_case_usd
            checks.append(GateCheck(f"{suite}.cost", ok,
                                    f"${per_case:.6f} per case (budget ${policy.max_cost_per_case_usd:g})"))
    if policy.max_latency_p95_ms is not None:
        p95 = summary.get("latency_p95_ms")
        ok = p95 is not None and p95 <= policy.max_latency_p95_ms
        shown = "unknown" if p95 is None else f"{p95:.0f} ms"
        checks.append(GateCheck(f"{suite}.latency", ok, f"p95 {shown} (budget {policy.max_latency_p95_ms:g} ms)"))
    return checks


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
