"""The release-gate page: versions, labels and verdicts, and the gate-checked actions of a lead."""

from __future__ import annotations

from core.releases.labels import audit_log, release_status
from tests.dashboards.conftest import frame
from tests.dashboards.seed import BAD_VERSION, GOOD_VERSION, PROMPT, Seeded


def _open(open_page):
    at = open_page("pages/release_gate.py", role="lead")
    at.selectbox(key="release_subject").set_value(PROMPT).run()
    return at


def _apply(at, version: str, action: str):
    at.selectbox(key="release_version").set_value(version).run()
    at.radio(key="release_action").set_value(action).run()
    at.button(key="release_apply").click().run()
    return at


def test_versions_show_the_gate_verdict_and_reasons(seeded: Seeded, open_page):
    at = _open(open_page)
    versions = frame(at, "release_versions").set_index("version")
    assert versions.loc[GOOD_VERSION, "gate"] == "pass"
    assert versions.loc[BAD_VERSION, "gate"] == "refuse"
    assert "exit_status" in versions.loc[BAD_VERSION, "reasons"]
    at.selectbox(key="release_version").set_value(BAD_VERSION).run()
    checks = frame(at, "release_checks").set_index("check")
    assert not checks.loc["exit_status", "passed"] and checks.loc["qa.min_score", "passed"]
    suites = frame(at, "release_suites").set_index("suite")
    assert suites.loc["qa", "score"] == 17 / 20 and suites.loc["qa", "min_score"] == 0.5
    comparison = frame(at, "release_comparison").set_index("suite")  # against baseline `main`
    assert round(comparison.loc["qa", "delta"], 6) == -0.15


def test_a_lead_promotes_a_passing_version_and_is_refused_a_failing_one(seeded: Seeded, engine, open_page):
    at = _apply(_open(open_page), GOOD_VERSION, "promote")
    assert next(s.value for s in at.success) == f"{PROMPT}: production → {GOOD_VERSION[:12]}"
    assert [(s.label, s.target.version) for s in release_status(engine, PROMPT)] == [("production", GOOD_VERSION)]

    at = _apply(at, BAD_VERSION, "promote")
    refusal = [e.value for e in at.error if e.value.startswith("Refused")]
    assert refusal and "exit_status" in refusal[0]
    assert [s.target.version for s in release_status(engine, PROMPT)] == [GOOD_VERSION]

    # Forcing needs a reason; with one it goes through and the audit log says so.
    at.checkbox(key="release_force").check().run()
    at.button(key="release_apply").click().run()
    assert any("needs a reason" in e.value for e in at.error)
    at.checkbox(key="release_force").check()
    at.text_input(key="release_reason").set_value("hotfix, suite flaked")
    at.button(key="release_apply").click().run()
    assert any("forced past the gate" in s.value for s in at.success)
    entries = audit_log(engine, PROMPT)
    assert [(e.action, e.after.version if e.after else None, e.forced, e.actor) for e in entries] == [
        ("promote", BAD_VERSION, True, "lead"), ("promote", GOOD_VERSION, False, "lead"),
    ]
    audit = frame(at, "release_audit")
    assert list(audit["action"]) == ["promote", "promote"] and list(audit["forced"]) == [True, False]
    assert audit["reason"][0] == "hotfix, suite flaked"


def test_canary_shadow_and_rollback_move_the_labels(seeded: Seeded, engine, open_page):
    at = _apply(_open(open_page), GOOD_VERSION, "promote")
    at.selectbox(key="release_version").set_value(BAD_VERSION).run()
    at.radio(key="release_action").set_value("canary").run()
    at.slider(key="release_weight").set_value(0.25).run()
    at.button(key="release_apply").click().run()
    at = _apply(at, BAD_VERSION, "shadow")
    labels = {s.label: (s.target.version, s.weight) for s in release_status(engine, PROMPT)}
    assert labels == {"production": (GOOD_VERSION, 1.0), "canary": (BAD_VERSION, 0.25), "shadow": (BAD_VERSION, 1.0)}
    shown = frame(at, "release_labels").set_index("label")
    assert shown.loc["canary", "version"] == BAD_VERSION and shown.loc["canary", "weight"] == 0.25

    at.radio(key="release_action").set_value("promote").run()
    at.checkbox(key="release_force").check()
    at.text_input(key="release_reason").set_value("accepting the risk")
    at.button(key="release_apply").click().run()  # the bad version, forced: production moves
    at = _apply(at, GOOD_VERSION, "rollback")
    assert any("rolled back" in s.value for s in at.success)
    labels = {s.label: s.target.version for s in release_status(engine, PROMPT)}
    assert labels["production"] == GOOD_VERSION
