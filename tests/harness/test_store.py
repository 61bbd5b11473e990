"""RunStore on SQLite and PostgreSQL: writing, loading, references, baselines, export and import."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from sqlmodel import Session, select

from core.database import open_database
from core.tables import CaseResultBase, PromptVersion
from harness.errors import HarnessError
from harness.provenance import collect_provenance
from harness.results import LLMResult, Score
from harness.store import CaseRecord, RunStore, load_run_file


@pytest.fixture
def store(db_url):
    engine = open_database(db_url)
    yield RunStore(engine)
    engine.dispose()


def provenance(branch: str = "main", minutes: int = 0) -> dict:
    return {
        "git_commit": "c0ffee" * 6 + "abcd",
        "git_branch": branch,
        "git_dirty": False,
        "harness_version": "0.1.0",
        "machine": {"cpu_count": 2},
        "started_at": datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes),
    }


def case(suite: str, case_id: str, passed: bool | None = True, repeat: int = 0, **extra) -> dict:
    return {"suite": suite, "case_id": case_id, "repeat": repeat, "inputs": {"q": case_id}, "passed": passed, **extra}


def finished_run(store: RunStore, branch: str = "main", minutes: int = 0, label: str | None = None) -> str:
    run_id = store.start_run(provenance(branch, minutes), label=label)
    store.add_case_results(run_id, [case("qa", "c1"), case("qa", "c2", passed=False)])
    store.finish_run(run_id, exit_status=0)
    return run_id


def test_run_round_trip_keeps_meta_and_case_results(store):
    result = LLMResult(text="Paris", model="m", latency_ms=12.5, ttft_ms=3.0, tokens_in=7, tokens_out=2,
                       cost_usd=None, replayed=True, raw={"id": "x"})
    score = Score(name="exact_match", value=1.0, passed=True, threshold=1.0, args={"ignore_case": True})
    run_id = store.start_run(provenance(), label="pr-42", repeat=2, prompt_versions={"capital": "abc123"},
                             dataset_hashes={"datasets/capitals.jsonl": "f" * 64}, models={"default": "m"})
    written = store.add_case_results(run_id, [
        {"suite": "qa", "case_id": "fr", "repeat": 0, "inputs": {"country": "France"}, "output": result,
         "scores": [score], "passed": True},
        CaseRecord(suite="qa", case_id="fr", repeat=1, passed=None, error="judge timed out"),
    ])
    store.finish_run(run_id, exit_status=1, suites={"qa": {"cases": 1}})

    loaded = store.load_run(run_id)
    assert written == 2
    assert loaded.meta.status == "finished" and loaded.meta.exit_status == 1
    assert loaded.meta.label == "pr-42" and loaded.meta.repeat == 2
    assert loaded.meta.prompt_versions == {"capital": "abc123"}
    assert loaded.meta.suites == {"qa": {"cases": 1}}
    assert loaded.meta.replay is True  # derived from the replayed case result
    assert loaded.meta.started_at == provenance()["started_at"]
    assert loaded.meta.finished_at is not None and loaded.meta.finished_at.tzinfo is not None
    first, second = loaded.cases
    assert first.output == result.to_dict() and first.scores == [score.to_dict()]
    assert (first.latency_ms, first.tokens_in, first.tokens_out, first.cost_usd) == (12.5, 7, 2, None)
    assert first.replayed is True and first.score_value("exact_match") == 1.0
    assert (second.repeat, second.passed, second.error, second.output) == (1, None, "judge timed out", None)


def test_ten_thousand_case_results_in_batches(store):
    run_id = store.start_run(provenance())
    output = LLMResult(text="ok", model="m", latency_ms=5.0, ttft_ms=None, tokens_in=3, tokens_out=1,
                       cost_usd=0.0001).to_dict()
    rows = [case(f"s{i % 7}", f"c{i}", passed=i % 3 != 0, output=output,
                 scores=[{"name": "exact", "value": float(i % 3 != 0), "passed": i % 3 != 0}])
            for i in range(10_000)]
    started = time.perf_counter()
    for start in range(0, len(rows), 500):
        store.add_case_results(run_id, rows[start:start + 500])
    elapsed = time.perf_counter() - started
    print(f"\n10,000 case results on {store.engine.dialect.name}: {elapsed:.3f} s")
    loaded = store.load_run(run_id)
    assert len(loaded.cases) == 10_000
    assert sum(1 for c in loaded.cases if c.passed) == 6666
    assert loaded.cases[-1].case_id == "c9999" and loaded.cases[-1].cost_usd == 0.0001


def test_references_resolve_by_id_prefix_label_baseline_and_latest(store):
    old_main = finished_run(store, "main", minutes=0, label="nightly-1")
    feature = finished_run(store, "feature/x", minutes=5)
    new_main = finished_run(store, "main", minutes=10)
    current = store.start_run(provenance("main", minutes=20))  # still running, and the one being judged
    store.save_baseline("main", old_main, note="release 1")

    assert store.resolve(new_main) == new_main
    assert store.resolve(new_main[:10]) == new_main
    assert store.resolve("nightly-1") == old_main
    assert store.resolve("main") == old_main
    assert store.resolve("latest") == new_main
    assert store.resolve("latest-on-branch:feature/x") == feature
    assert store.resolve("latest-on-branch:main", exclude=new_main) == old_main
    store.finish_run(current)
    assert store.resolve("latest-on-branch:main", exclude=current) == new_main
    assert store.resolve("latest") == current


def test_unknown_reference_names_the_baselines(store):
    store.save_baseline("nightly", finished_run(store))
    store.save_baseline("main", finished_run(store, minutes=1))
    with pytest.raises(HarnessError) as info:
        store.resolve("foo")
    assert str(info.value) == "no run or baseline named 'foo' (baselines: main, nightly)"
    with pytest.raises(HarnessError, match="no finished run on branch 'nowhere'"):
        store.resolve("latest-on-branch:nowhere")


def test_ambiguous_prefix_is_an_error(store):
    first = store.start_run(provenance(), id="abcd" + "1" * 28)
    store.start_run(provenance(), id="abcd" + "2" * 28)
    with pytest.raises(HarnessError, match="ambiguous"):
        store.resolve("abcd")
    assert store.resolve("abcd1") == first
    with pytest.raises(HarnessError, match="no run or baseline named 'abc'"):
        store.resolve("abc")  # shorter than a prefix may be


def test_baseline_moves_and_lists(store):
    first, second = finished_run(store), finished_run(store, minutes=1)
    store.save_baseline("main", first, note="v1")
    moved = store.save_baseline("main", second, note="v2")
    assert (moved.run_id, moved.note) == (second, "v2")
    assert [(b.name, b.run_id) for b in store.list_baselines()] == [("main", second)]
    with pytest.raises(HarnessError, match="no run with id"):
        store.save_baseline("nightly", "0" * 32)
    with pytest.raises(HarnessError, match="reserved"):
        store.save_baseline("latest", first)


def test_record_prompt_versions_keeps_the_first_sighting(store, tmp_path):
    prompt = tmp_path / "greet.prompt"
    prompt.write_text("[SYSTEM]\nhello\n")
    assert store.record_prompt_versions({"greet": ("v1", prompt), "other": ("v9", None)}) == 2
    assert store.record_prompt_versions({"greet": ("v1", prompt), "greet2": ("v1", None)}) == 1
    assert store.record_prompt_versions({}) == 0
    with Session(store.engine) as session:
        rows = {(p.name, p.version): p for p in session.exec(select(PromptVersion))}
    assert sorted(rows) == [("greet", "v1"), ("greet2", "v1"), ("other", "v9")]
    assert rows[("greet", "v1")].content_hash == hashlib.sha256(prompt.read_bytes()).hexdigest()
    assert rows[("greet", "v1")].path == str(prompt) and rows[("other", "v9")].content_hash is None


def test_export_import_round_trip_into_an_empty_database(store, sqlite_url, tmp_path):
    run_id = store.start_run(provenance(), label="golden", suites={"qa": {"primary_score": "exact"}})
    store.add_case_results(run_id, [case("qa", "c1", output={"text": "a", "latency_ms": 1.0, "raw": {"big": 1}}),
                                    case("qa", "c2", passed=False, repeat=1)])
    store.finish_run(run_id)
    store.save_baseline("main", run_id)
    path = store.export_run_file(run_id, tmp_path / "baselines" / "main.json", baseline="main")

    exported = orjson.loads(path.read_bytes())
    assert exported["format"] == "tollgate.run" and exported["baseline"] == "main"
    assert len(exported["cases"]) == 2

    fresh = RunStore(open_database(sqlite_url))
    try:
        assert fresh.import_run_file(path) == run_id
        assert fresh.import_run_file(path) == run_id  # importing twice changes nothing
        again = fresh.load_run(run_id)
        original = store.load_run(run_id)
        assert again.meta == original.meta
        assert again.cases == original.cases
        assert fresh.export_run(run_id, baseline="main") == store.export_run(run_id, baseline="main")
    finally:
        fresh.engine.dispose()


def test_json_file_reference_needs_no_database_row(store, tmp_path):
    run_id = finished_run(store, label="golden")
    path = store.export_run_file(run_id, tmp_path / "main.json", include_raw=False)
    from_file = load_run_file(path)
    assert from_file.id == run_id and from_file.source == str(path)
    other = store.load_run(str(path))
    assert [c.case_id for c in other.cases] == ["c1", "c2"]
    with pytest.raises(HarnessError, match="run file not found"):
        store.load_run(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text('{"format": "something-else"}')
    with pytest.raises(HarnessError, match="not an exported tollgate run"):
        store.load_run(str(tmp_path / "bad.json"))


def test_slim_export_drops_raw_bodies(store):
    run_id = store.start_run(provenance())
    store.add_case_results(run_id, [case("qa", "c1", output={"text": "a", "latency_ms": 1.0, "raw": {"big": 1}})])
    assert store.export_run(run_id, include_raw=False)["cases"][0]["output"]["raw"] is None
    assert store.export_run(run_id)["cases"][0]["output"]["raw"] == {"big": 1}


def test_start_run_rejects_unknown_fields_and_takes_real_provenance(store):
    with pytest.raises(HarnessError, match="unknown run field"):
        store.start_run(provenance(), colour="blue")
    run_id = store.start_run(collect_provenance())
    meta = store.load_run(run_id).meta
    assert meta.machine["cpu_count"] >= 1 and len(meta.machine["hostname_hash"]) == 12


def test_case_record_has_exactly_the_case_result_columns():
    # CaseRecord is the light in-memory twin of the table row; it must not drift from the schema.
    columns = set(CaseResultBase.model_fields)
    assert {f.name for f in dataclasses.fields(CaseRecord)} == columns
