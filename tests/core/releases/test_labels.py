"""Label moves: gate-checked promotion, forced promotion audited, canary, shadow, rollback, the snapshot sidecars load."""

from __future__ import annotations

import pytest

from core.releases import (
    GateRefused,
    ReleaseError,
    audit_log,
    clear_label,
    load_snapshot,
    promote,
    read_revision,
    release_status,
    rollback,
    set_canary,
    set_shadow,
)


def test_promotion_is_refused_for_an_unpassed_version(engine, prompts, add_run):
    version = prompts.write()
    add_run({"greet": version}, exit_status=1, verdict="regression")
    with pytest.raises(GateRefused) as refused:
        promote(engine, "greet", version="current", registry=prompts.registry)
    assert not refused.value.decision.passed
    assert "greeting.regression: significant regression" in str(refused.value)
    assert release_status(engine) == []
    assert audit_log(engine) == []


def test_promotion_is_accepted_for_a_passed_version_and_audited(engine, prompts, add_run):
    version = prompts.write()
    run_id = add_run({"greet": version}, verdict="pass")
    change = promote(engine, "greet", version=version[:6], registry=prompts.registry, actor="ci")
    assert change.after is not None and change.after.version == version and not change.forced
    [state] = release_status(engine, "greet")
    assert (state.label, state.kind, state.target.version, state.updated_by) == ("production", "prompt", version, "ci")
    [entry] = audit_log(engine, "greet")
    assert (entry.action, entry.run_id, entry.forced) == ("promote", run_id, False)
    assert entry.gate is not None and entry.gate["passed"] is True


def test_forced_promotion_needs_a_reason_and_is_audited(engine, prompts):
    prompts.write()
    with pytest.raises(ReleaseError, match="needs a reason"):
        promote(engine, "greet", registry=prompts.registry, force=True)
    change = promote(engine, "greet", registry=prompts.registry, force=True, reason="hotfix for outage", actor="ana")
    assert change.forced and change.gate is not None and not change.gate.passed
    [entry] = audit_log(engine)
    assert (entry.action, entry.forced, entry.reason, entry.actor) == ("promote", True, "hotfix for outage", "ana")
    assert entry.gate is not None and entry.gate["passed"] is False
    assert entry.gate["checks"][0]["name"] == "run"


def test_a_passing_gate_is_not_recorded_as_forced(engine, prompts, add_run):
    add_run({"greet": prompts.write()})
    change = promote(engine, "greet", registry=prompts.registry, force=True, reason="belt and braces")
    assert not change.forced


def test_rollback_returns_to_the_previous_version_even_after_the_file_changed(engine, prompts, add_run):
    first = prompts.write("You are polite.")
    add_run({"greet": first})
    promote(engine, "greet", registry=prompts.registry)
    second = prompts.write("You are terse.")
    add_run({"greet": second})
    promote(engine, "greet", version="current", registry=prompts.registry)
    set_canary(engine, "greet", version=second, model="other-model", weight=0.1, registry=prompts.registry)
    prompts.write("You are something else entirely.")
    change = rollback(engine, "greet", reason="bad answers", actor="oncall")
    assert change.before is not None and change.before.version == second
    assert change.after is not None and change.after.version == first
    labels = {state.label: state for state in release_status(engine, "greet")}
    assert set(labels) == {"production"} and labels["production"].target.version == first
    snapshot = load_snapshot(engine)
    assert ("greet", first) in snapshot.sources and "You are polite." in snapshot.sources[("greet", first)]
    actions = [entry.action for entry in audit_log(engine, "greet")]
    assert actions[:2] == ["clear", "rollback"]
    with pytest.raises(ReleaseError, match="nothing to roll back to"):
        rollback(engine, "greet")


def test_rollback_to_a_named_version_must_have_served_production(engine, prompts, add_run):
    first = prompts.write("one")
    add_run({"greet": first})
    promote(engine, "greet", registry=prompts.registry)
    second = prompts.write("two")
    add_run({"greet": second})
    promote(engine, "greet", registry=prompts.registry, version="current")
    with pytest.raises(ReleaseError, match="never served"):
        rollback(engine, "greet", version="ffffffff")
    assert rollback(engine, "greet", version=first[:5]).after.version == first  # type: ignore[union-attr]


def test_promoting_the_canary_target_clears_the_canary(engine, prompts, add_run):
    first = prompts.write("one")
    add_run({"greet": first})
    promote(engine, "greet", registry=prompts.registry)
    second = prompts.write("two")
    set_canary(engine, "greet", version="current", weight=0.05, registry=prompts.registry)
    add_run({"greet": second})
    promote(engine, "greet", version=second, registry=prompts.registry)
    assert [s.label for s in release_status(engine, "greet")] == ["production"]


def test_canary_and_shadow_labels(engine, prompts):
    version = prompts.write()
    with pytest.raises(ReleaseError, match="weight"):
        set_canary(engine, "greet", weight=1.5, registry=prompts.registry)
    set_canary(engine, "greet", weight=0.05, registry=prompts.registry)
    set_shadow(engine, "greet", model="big-model", registry=prompts.registry)
    states = {s.label: s for s in release_status(engine, "greet")}
    assert states["canary"].weight == 0.05 and states["canary"].target.version == version
    assert (states["shadow"].target.version, states["shadow"].target.model) == (version, "big-model")
    clear_label(engine, "greet", "shadow")
    assert {s.label for s in release_status(engine, "greet")} == {"canary"}
    with pytest.raises(ReleaseError, match="only canary and shadow"):
        clear_label(engine, "greet", "production")


def test_unknown_versions_and_subjects_are_clear_errors(engine, prompts):
    prompts.write()
    with pytest.raises(ReleaseError, match="is not known"):
        promote(engine, "greet", version="deadbeef", registry=prompts.registry, force=True, reason="x")
    with pytest.raises(ReleaseError, match="name the model"):
        set_canary(engine, "assistant", weight=0.5, registry=prompts.registry)


def test_model_aliases_are_released_like_prompts(engine, add_run):
    add_run({}, models={"small-model": 3})
    promote(engine, "assistant", model="small-model")
    set_canary(engine, "assistant", model="large-model", weight=0.2)
    snapshot = load_snapshot(engine)
    state = snapshot.subjects["assistant"]
    assert state.kind == "model"
    assert (state.labels["production"].model, state.labels["canary"].model) == ("small-model", "large-model")


def test_every_change_bumps_the_revision(engine, prompts):
    prompts.write()
    before = read_revision(engine)
    set_canary(engine, "greet", weight=0.5, registry=prompts.registry)
    set_shadow(engine, "greet", registry=prompts.registry)
    clear_label(engine, "greet", "canary")
    assert read_revision(engine) == before + 3
    assert load_snapshot(engine).revision == before + 3
