"""A small, fully known database for the dashboard tests: traffic (through the real insert path, so the
latency rollups and review queue are filled as in production), two evaluation runs and a baseline."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.releases.labels import store_prompt_source
from core.tables import JudgeScore
from harness.store import RunStore
from sidecar.traffic.store import TRAFFIC_TABLE, insert_rows

MODELS = ("model-a", "model-b")
USERS = ("alice", "bob", "carol")
FEATURES = ("search", "summary")
PROMPTS = ("greet", "triage")
SEGMENTS = ("free", "pro")
ARMS = ("production", "production", None, "canary", "shadow")
PROMPT = "greet"
GOOD_VERSION = "aaaa1111bbbb2222"  # its latest run passed: the gate lets it through
BAD_VERSION = "cccc3333dddd4444"  # its latest run failed (exit status 1): the gate refuses it


@dataclass
class Seeded:
    """What was written, so tests compute the expected figures from the data itself."""

    traffic: list[dict[str, Any]] = field(default_factory=list)
    baseline_run: str = ""
    current_run: str = ""
    judge_scores: list[dict[str, Any]] = field(default_factory=list)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


def traffic_rows(count: int, now: datetime) -> list[dict[str, Any]]:
    """`count` requests spread over the last 20 hours, with errors, guard events, arms and flagged rows."""
    rows = []
    for index in range(count):
        row: dict[str, Any] = dict.fromkeys(column.name for column in TRAFFIC_TABLE.columns)
        failed = index % 10 == 7
        guarded = index % 6 == 1
        model = MODELS[index % 2]
        request = {"model": model, "messages": [{"role": "user", "content": f"question {index} about [EMAIL]"}]}
        answer = {"choices": [{"message": {"role": "assistant", "content": f"answer {index}"}}]}
        row.update(
            id=f"t{index:05d}",
            request_id=f"req-{index}",
            # Whole minutes keep each request in one rollup minute and well inside "last 24 hours".
            created_at=(now - timedelta(minutes=5 + index * 7)).replace(second=0, microsecond=0),
            endpoint="chat.completions",
            requested_model=model,
            served_model=model,
            user=USERS[index % 3],
            feature=FEATURES[index % 2],
            segment=SEGMENTS[(index // 2) % 2],
            prompt_name=PROMPTS[(index // 3) % 2],
            stream=False,
            status=502 if failed else 200,
            error_class="upstream_error" if failed else None,
            request_body=orjson.dumps(request).decode(),
            response_body=None if failed else orjson.dumps(answer).decode(),
            redactions=1,
            tokens_in=None if failed else 10 + index % 5,
            tokens_out=None if failed else 20 + index % 7,
            usage_estimated=False,
            cost_usd=None if failed else round(0.001 * (1 + index % 4), 6),
            ttft_ms=None,
            latency_ms=float(50 + (index * 37) % 400),
            attempts=1,
            variant=ARMS[index % 5],
            shadow_of=f"req-{index - 1}" if ARMS[index % 5] == "shadow" else None,
            guard_events=orjson.dumps(
                [{"guard": "pii", "reason": "email", "action": "redact"}]
                + ([{"guard": "toxicity", "reason": "0.9", "action": "block"}] if index % 12 == 1 else [])
            ).decode() if guarded else None,
            review_reason="guard: pii in output" if index % 9 == 4 else None,
        )
        rows.append(row)
    return rows


def seed(engine: Engine, traffic: int = 120) -> Seeded:
    """Fill `engine` (already migrated) and return what was written."""
    data = Seeded()
    data.traffic = traffic_rows(traffic, data.now)
    with engine.begin() as connection:
        insert_rows(connection, data.traffic)
    store = RunStore(engine)
    data.baseline_run = _run(store, data.now - timedelta(days=2), "base", GOOD_VERSION, 0, flip={})
    data.current_run = _run(store, data.now - timedelta(hours=1), "candidate", BAD_VERSION, 1,
                            flip={"c03": [False, False], "c05": [True, False]})
    store.save_baseline("main", data.baseline_run)
    for version in (GOOD_VERSION, BAD_VERSION):
        store.record_prompt_versions({PROMPT: (version, None)})
        store_prompt_source(engine, PROMPT, version, f"[SYSTEM]\nYou greet people ({version}).\n")
    data.judge_scores = judge_scores(data.traffic)
    with engine.begin() as connection:
        connection.execute(sa.insert(JudgeScore.__table__), data.judge_scores)  # type: ignore[attr-defined]
    return data


def judge_scores(traffic: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A `helpfulness` verdict on every fourth successful request; canary answers score lower."""
    scores = []
    for index, row in enumerate(traffic):
        if row["status"] >= 400 or index % 4:
            continue
        value = 0.5 if row["variant"] == "canary" else 0.8 + (index % 3) / 10
        scores.append({
            "created_at": row["created_at"], "traffic_id": row["id"], "metric": "helpfulness", "rubric_hash": "r1",
            "judges": "judge-a", "value": value, "passed": value >= 0.7, "threshold": 0.7, "spread": 0.0,
            "cached": False, "error": None, "details": {},
        })
    return scores


def _run(store: RunStore, started: datetime, label: str, version: str, exit_status: int,
         flip: dict[str, list[bool]]) -> str:
    """Suite `qa` using the prompt at `version`: cases c00..c09, two repeats each, all passing but for the
    cases in `flip`."""
    run_id = store.start_run(
        {"git_commit": "abc123", "git_branch": "main", "git_dirty": False, "harness_version": "0.1.0",
         "machine": {}, "started_at": started},
        label=label, prompt_versions={PROMPT: version},
    )
    results = []
    for number in range(10):
        case_id = f"c{number:02d}"
        for repeat, passed in enumerate(flip.get(case_id, [True, True])):
            results.append({
                "suite": "qa", "case_id": case_id, "repeat": repeat, "inputs": {"question": f"q{number}"},
                "output": {"text": f"answer {number}"}, "passed": passed,
                "scores": [{"name": "judge", "value": 1.0 if passed else 0.0, "passed": passed, "threshold": 0.5,
                            "args": {}, "error": None,
                            "details": {"reason": "matches the reference" if passed else "wrong city"}}],
            })
    store.add_case_results(run_id, results)
    passed = sum(1 for result in results if result["passed"])
    summary = {"prompt": PROMPT, "score": passed / len(results), "gate": {"min_score": 0.5}, "cases": 10,
               "results": len(results)}
    store.finish_run(run_id, exit_status=exit_status, suites={"qa": summary})
    return run_id
