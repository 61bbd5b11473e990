"""Release gate: versions and labels per prompt, the gate's verdict with reasons, and the label actions.

Promote, canary, shadow, rollback and clear call the `core.releases` functions that `tollgate release` calls,
so the gate refuses here exactly when it refuses there, and every change lands in the same audit log.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core.prompts import PromptRegistry
from core.releases.errors import GateRefused, ReleaseError
from core.releases.gate import GateDecision, evaluate_gate, latest_run_for
from core.releases.labels import (
    audit_log,
    clear_label,
    promote,
    release_status,
    rollback,
    set_canary,
    set_shadow,
)
from dashboards import release_queries, run_queries
from dashboards.context import PageContext, lead_only, page_context, show_table

_MESSAGE = "release_message"
ACTIONS = ("promote", "canary", "shadow", "rollback", "clear canary", "clear shadow")


def render(ctx: PageContext) -> None:
    st.title("Release gate")
    _show_message()
    registry = PromptRegistry(ctx.settings.releases.prompts_dir)
    subjects = release_queries.subjects(ctx.engine, registry)
    if not subjects:
        st.info("No prompt has run in a suite or been released yet.")
        return
    subject = str(st.selectbox("Prompt", subjects, key="release_subject"))
    states = release_status(ctx.engine, subject)
    labels_by_version: dict[str, list[str]] = {}
    for state in states:
        labels_by_version.setdefault(state.target.version or "", []).append(state.label)
    st.subheader("Labels")
    if states:
        show_table(pd.DataFrame([
            {"label": s.label, "version": s.target.version, "model": s.target.model, "weight": s.weight,
             "updated_at": s.updated_at, "updated_by": s.updated_by}
            for s in states
        ]), key="release_labels")
    else:
        st.caption("No label yet: the sidecar serves the prompt file as it is.")
    versions = release_queries.versions(ctx.engine, subject)
    decisions = {
        row["version"]: evaluate_gate(ctx.engine, subject, version=row["version"], policy=ctx.settings.releases.gate)
        for row in versions
    }
    st.subheader("Versions and their gate")
    show_table(pd.DataFrame([
        {"version": row["version"], "first_seen_at": row["first_seen_at"],
         "labels": ", ".join(labels_by_version.get(row["version"], [])),
         "gate": "pass" if decisions[row["version"]].passed else "refuse",
         "run": (decisions[row["version"]].run_id or "")[:8], "reasons": decisions[row["version"]].summary()}
        for row in versions
    ]), key="release_versions")
    if not versions:
        st.info("No version of this prompt ran in a suite yet.")
        return
    version = str(st.selectbox("Version", [row["version"] for row in versions], key="release_version"))
    decision = decisions[version]
    _gate_detail(ctx, subject, version, decision)
    if lead_only(ctx.user, "change releases"):
        _actions(ctx, subject, version, decision)
    st.subheader("Audit log")
    entries = audit_log(ctx.engine, subject, limit=50)
    show_table(pd.DataFrame([
        {"at": e.at, "action": e.action, "label": e.label,
         "from": e.before.describe() if e.before else None, "to": e.after.describe() if e.after else None,
         "weight": e.weight, "forced": e.forced, "reason": e.reason, "actor": e.actor,
         "run": (e.run_id or "")[:8]}
        for e in entries
    ]), key="release_audit")


def _gate_detail(ctx: PageContext, subject: str, version: str, decision: GateDecision) -> None:
    verdict = "passes" if decision.passed else "refuses"
    (st.success if decision.passed else st.error)(f"The gate {verdict} {subject} {version[:12]}.")
    show_table(pd.DataFrame([
        {"check": check.name, "passed": check.passed, "detail": check.detail} for check in decision.checks
    ]), key="release_checks")
    run = latest_run_for(ctx.engine, subject, version=version)
    if run is None:
        return
    st.markdown(f"**Latest suite run** `{run.id[:8]}` ({run.label or 'no label'}), suites against thresholds:")
    suites = [
        {"suite": name, "score": summary.get("score"), "ci_low": summary.get("ci_low"),
         "ci_high": summary.get("ci_high"), "min_score": (summary.get("gate") or {}).get("min_score"),
         "verdict": summary.get("verdict"), "failing": len(summary.get("failing") or []),
         "flaky": len(summary.get("flaky") or [])}
        for name, summary in sorted((run.suites or {}).items()) if isinstance(summary, dict)
    ]
    show_table(pd.DataFrame(suites), key="release_suites")
    baselines = {name: rid for name, rid in run_queries.baselines(ctx.engine).items() if rid != run.id}
    if baselines:
        name = str(st.selectbox("Against baseline", list(baselines), key="release_baseline"))
        comparison = run_queries.compare_with(ctx.engine, run.id, baselines[name])
        show_table(pd.DataFrame([
            {"suite": r.suite, "score": r.score, "baseline": r.baseline_score, "delta": r.delta,
             "ci_low": r.ci_low, "ci_high": r.ci_high, "verdict": r.verdict, "reasons": "; ".join(r.reasons)}
            for r in comparison.rows
        ]), key="release_comparison")


def _actions(ctx: PageContext, subject: str, version: str, decision: GateDecision) -> None:
    st.subheader("Change the release")
    action = str(st.radio("Action", ACTIONS, horizontal=True, key="release_action"))
    weight = 0.1
    if action == "canary":
        weight = float(st.slider("Canary share of users", 0.01, 1.0, 0.1, 0.01, key="release_weight"))
    force = False
    if action == "promote" and not decision.passed:
        force = st.checkbox("Force past the gate (audited, needs a reason)", key="release_force")
    reason = st.text_input("Reason", key="release_reason").strip() or None
    if not st.button(f"Apply: {action} {version[:12]}", type="primary", key="release_apply"):
        return
    try:
        message = _apply(ctx, action, subject, version, weight, force, reason)
    except GateRefused as exc:
        st.session_state[_MESSAGE] = ("error", f"Refused: {exc.decision.summary()}")
    except ReleaseError as exc:
        st.session_state[_MESSAGE] = ("error", str(exc))
    else:
        st.session_state[_MESSAGE] = ("success", message)
    st.rerun()


def _apply(ctx: PageContext, action: str, subject: str, version: str, weight: float, force: bool,
           reason: str | None) -> str:
    common: dict[str, Any] = {"reason": reason, "actor": ctx.user.name}
    registry = PromptRegistry(ctx.settings.releases.prompts_dir)
    if action == "promote":
        change = promote(ctx.engine, subject, version=version, policy=ctx.settings.releases.gate,
                         registry=registry, force=force, **common)
        return f"{subject}: production → {version[:12]}" + (" (forced past the gate)" if change.forced else "")
    if action == "canary":
        set_canary(ctx.engine, subject, weight=weight, version=version, registry=registry, **common)
        return f"{subject}: canary → {version[:12]} for {weight:.0%} of users"
    if action == "shadow":
        set_shadow(ctx.engine, subject, version=version, registry=registry, **common)
        return f"{subject}: shadow → {version[:12]}"
    if action == "rollback":
        change = rollback(ctx.engine, subject, **common)
        return f"{subject}: production rolled back to {change.after.describe() if change.after else '-'}"
    label = action.removeprefix("clear ")
    clear_label(ctx.engine, subject, label, **common)
    return f"{subject}: {label} cleared"


def _show_message() -> None:
    message = st.session_state.pop(_MESSAGE, None)
    if message is None:
        return
    kind, text = message
    if kind == "success":
        st.success(text, icon=":material/check_circle:")
    else:
        st.error(text, icon=":material/block:")


if __name__ == "__main__":
    render(page_context())
