"""Judge provenance: the verdict cache on every database, and judge or rubric changes in comparisons."""

from __future__ import annotations

from harness.gate import compare_runs, format_table
from harness.judges.cache import JudgeCache, cache_key
from harness.judges.gate import judge_changes
from harness.judges.metrics import JudgeItem, MetricSpec
from harness.store import CaseRecord, RunData


def test_cache_round_trip_on_every_database(db_url):
    from core.database import open_database

    engine = open_database(db_url)
    try:
        spec = MetricSpec("geval", "x", {"steps": ["a"]})
        key = cache_key(spec, "judge-a", 0, JudgeItem(output="o", input="i"))
        cache = JudgeCache(engine)
        assert cache.get(key) is None
        cache.put(key, metric=spec.label, rubric_hash=spec.rubric_hash, judge="judge-a", value=0.7, reason="ok")
        cache.put(key, metric=spec.label, rubric_hash=spec.rubric_hash, judge="judge-a", value=0.1, reason="dup")
        assert JudgeCache(engine).get(key) == (0.7, "ok")
        assert cache.clear("geval:other") == 0 and cache.clear() == 1
    finally:
        engine.dispose()


def test_rubric_hash_covers_the_rubric_not_the_threshold():
    one = MetricSpec("geval", "x", {"steps": ["a"], "params": ["input"]})
    assert one.rubric_hash == MetricSpec("geval", "x", {"params": ["input"], "steps": ["a"]}).rubric_hash
    assert one.rubric_hash != MetricSpec("geval", "x", {"steps": ["b"], "params": ["input"]}).rubric_hash
    assert one.rubric_hash != MetricSpec("geval", "y", {"steps": ["a"], "params": ["input"]}).rubric_hash


def judged(case_id: str, value: float, judges: str, rubric: str = "r" * 64) -> CaseRecord:
    score = {"name": "geval", "value": value, "passed": value >= 0.5,
             "details": {"judge": {"metric": "geval:x", "judges": judges, "rubric_hash": rubric}}}
    return CaseRecord(suite="s", case_id=case_id, scores=[score], passed=value >= 0.5)


def test_judge_and_rubric_changes_are_named():
    before = [judged(f"c{i}", 0.8, "judge-a") for i in range(6)]
    assert judge_changes(before, before) == []
    [change] = judge_changes([judged(f"c{i}", 0.8, "judge-b") for i in range(6)], before)
    assert change == "geval: judge changed (judge-a -> judge-b); scores are not comparable"
    [change] = judge_changes([judged(f"c{i}", 0.8, "judge-a", "n" * 64) for i in range(6)], before)
    assert change.startswith("geval: rubric changed (rrrrrrrrrrrr -> nnnnnnnnnnnn)")


def test_comparison_shows_a_judge_change_even_when_it_passes():
    from core.tables import RunPublic, utc_now

    def run(cases: list[CaseRecord], name: str) -> RunData:
        return RunData(meta=RunPublic(id=name, started_at=utc_now(), harness_version="0", label=name), cases=cases)

    current = run([judged(f"c{i}", 0.8, "judge-b") for i in range(6)], "now")
    baseline = run([judged(f"c{i}", 0.8, "judge-a") for i in range(6)], "before")
    comparison = compare_runs(current, baseline)
    assert comparison.rows[0].verdict == "pass"
    assert comparison.rows[0].judge_changes == ("geval: judge changed (judge-a -> judge-b); scores are not comparable",)
    assert "s: geval: judge changed (judge-a -> judge-b)" in format_table(comparison)
