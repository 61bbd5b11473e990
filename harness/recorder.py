"""The recording side of a session: case rows arrive from test reports, runs go to the store, the gate decides.

This runs in the process that receives test reports: the only process without xdist, the controller with it.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson

from core.database import open_database
from core.errors import TollgateError
from core.settings import Settings
from harness.gate import Comparison, GateRule, compare_runs, rules_from_run
from harness.options import Options
from harness.provenance import collect_provenance
from harness.stats import suite_stats
from harness.store import CaseRecord, RunData, RunStore, is_file_ref, load_run_file
from harness.verdict import FailedCase

log = logging.getLogger("tollgate.harness")
BATCH = 500
FAILURES_KEPT = 100  # failing cases per suite kept with their input and answer for the summaries


class Recorder:
    """Buffers case rows and writes them in batches; the run row is created on the first case."""

    def __init__(self, options: Options, settings: Settings, rootpath: Path) -> None:
        self.options = options
        self.settings = settings
        self.rootpath = rootpath
        self.run_id: str | None = None
        self.rows_seen = 0
        self.errors: list[str] = []
        self._pending: list[dict[str, Any]] = []
        self._summaries: list[CaseRecord] = []
        self._suites: dict[str, dict[str, Any]] = {}
        self._prompts: dict[str, str] = {}
        self._datasets: dict[str, str] = {}
        self._models: dict[str, int] = defaultdict(int)
        self._store: RunStore | None = None
        self.comparison: Comparison | None = None
        self.current: RunData | None = None
        self.baseline_error: str | None = None
        self.gate_failures: list[str] = []  # failed checks beyond the comparison (e.g. judge agreement)
        # The first failing result of each case (bounded per suite): the summaries show what the model said.
        self.failures: dict[tuple[str, str], FailedCase] = {}
        self._failures_per_suite: dict[str, int] = defaultdict(int)

    @property
    def store(self) -> RunStore:
        if self._store is None:
            self._store = RunStore(open_database(self.settings.resolved_database_url))
        return self._store

    def add(self, row: dict[str, Any]) -> None:
        meta = row.pop("_meta", {}) or {}
        suite = self._suites.setdefault(row["suite"], {"gate": {}, "strict": False})
        suite["gate"].update(meta.get("gate") or {})
        suite["strict"] = suite["strict"] or bool(meta.get("strict"))
        if meta.get("prompt") and meta.get("prompt_version"):
            self._prompts[meta["prompt"]] = meta["prompt_version"]
            suite["prompt"] = meta["prompt"]
        if meta.get("dataset") and meta.get("dataset_sha256"):
            self._datasets[meta["dataset"]] = meta["dataset_sha256"]
        if meta.get("model"):
            self._models[meta["model"]] += 1
        if self.run_id is None:
            self.run_id = self.store.start_run(
                collect_provenance(), label=self.options.label, repeat=self.options.repeat
            )
        self._keep_failure(row, meta.get("expected"))
        self._pending.append(row)
        self._summaries.append(summary_record(row))
        self.rows_seen += 1
        if len(self._pending) >= BATCH:
            self.flush()

    def _keep_failure(self, row: dict[str, Any], expected: Any) -> None:
        key = (str(row["suite"]), str(row["case_id"]))
        if row.get("passed") is not False or key in self.failures or self._failures_per_suite[key[0]] >= FAILURES_KEPT:
            return
        self._failures_per_suite[key[0]] += 1
        self.failures[key] = FailedCase.from_row(row, expected)

    def flush(self) -> None:
        if self._pending and self.run_id is not None:
            self.store.add_case_results(self.run_id, self._pending)
            self._pending = []

    def finish(self, exit_status: int) -> int:
        """Write what is left, compare with the baseline, and return the session's exit status."""
        if self.run_id is None:
            return exit_status
        self.flush()
        store = self.store
        store.finish_run(
            self.run_id,
            suites=self._suites,
            prompt_versions=self._prompts,
            dataset_hashes=self._datasets,
            models=dict(self._models),
            exit_status=exit_status,
        )
        self._record_prompt_versions()
        # The statistics and the gate read only scalars and score values: reading the 10,000 rows just written
        # back from the database (with their inputs and outputs) cost 0.6 s and 40-68 MiB at the end of a run.
        self.current = RunData(meta=store.get_run(self.run_id), cases=self._summaries)
        self._summarise_suites(self.current)
        gate_failed = self._compare()
        for row in self.comparison.rows if self.comparison is not None else ():
            self._suites[row.suite]["verdict"] = row.verdict  # kept with the run: the release gate reads it
        self._save_outputs()
        failed_floor = any(summary.get("below_min_score") for summary in self._suites.values())
        if self.options.gate and (gate_failed or failed_floor) and exit_status == 0:
            exit_status = 1
        store.finish_run(self.run_id, suites=self._suites, exit_status=exit_status)
        return exit_status

    def _record_prompt_versions(self) -> None:
        versions = {name: (version, None) for name, version in self._prompts.items()}
        if versions:
            self.store.record_prompt_versions(versions)

    def _summarise_suites(self, run: RunData) -> None:
        """Per-suite score, interval, flaky cases and absolute floor (min_score), stored with the run."""
        by_suite: dict[str, list[Any]] = defaultdict(list)
        for case in run.cases:
            by_suite[case.suite].append(case)
        for name, cases in by_suite.items():
            summary = self._suites.setdefault(name, {"gate": {}})
            stats = suite_stats(name, cases, primary_score=summary.get("primary_score"))
            score = None if math.isnan(stats.score) else stats.score
            summary.update(
                cases=stats.n_cases, results=stats.n_results, score=score,
                ci_low=_finite(stats.ci_low), ci_high=_finite(stats.ci_high), errors=stats.n_errors,
                unscored=stats.n_unscored, replayed=stats.n_replayed, flaky=list(stats.flaky),
                failing=sorted(case for case, rate in stats.pass_rates.items() if rate < 1.0),
            )
            summary.update(_usage_summary(cases))
            floor = summary["gate"].get("min_score")
            summary["below_min_score"] = bool(floor is not None and score is not None and score < floor)

    def _compare(self) -> bool:
        ref = self.options.baseline
        if not ref or self.current is None:
            return False
        try:
            baseline = self._load_baseline(ref)
        except (TollgateError, OSError, ValueError) as exc:
            # Asked for a comparison that cannot be made: say so and fail, never pass silently.
            self.baseline_error = f"baseline {ref!r} not usable: {exc}"
            return True
        default = GateRule(max_drop=self.options.max_drop, alpha=self.options.alpha)
        rules = rules_from_run(self.current, default)
        self.comparison = compare_runs(self.current, baseline, rules, default)
        return self.comparison.failed

    def _load_baseline(self, ref: str) -> RunData:
        if is_file_ref(ref):
            path = Path(ref) if Path(ref).is_absolute() else self.rootpath / ref
            return load_run_file(path)
        return self.store.load_run(ref, exclude=self.run_id)

    def _save_outputs(self) -> None:
        assert self.run_id is not None
        if self.options.save_baseline:
            self.store.save_baseline(self.options.save_baseline, self.run_id, note="saved by pytest")
        if self.options.export:
            path = Path(self.options.export)
            path = path if path.is_absolute() else self.rootpath / path
            path.parent.mkdir(parents=True, exist_ok=True)
            self.store.export_run_file(self.run_id, path, include_raw=False)

    def report(self) -> dict[str, Any]:
        """The JSON report: run, suites, comparison."""
        from harness.gate import to_json

        return {
            "run_id": self.run_id,
            "suites": self._suites,
            "prompt_versions": self._prompts,
            "dataset_hashes": self._datasets,
            "baseline": self.options.baseline,
            "baseline_error": self.baseline_error,
            "comparison": to_json(self.comparison) if self.comparison is not None else None,
        }

    def write_report(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps(self.report(), option=orjson.OPT_INDENT_2, default=str))


def summary_record(row: dict[str, Any]) -> CaseRecord:
    """A case result as the statistics and the gate read it: no inputs, no output, scores as name and value."""
    output = row.get("output") or {}

    def value(key: str) -> Any:
        given = row.get(key)
        return output.get(key) if given is None else given

    return CaseRecord(
        suite=row["suite"],
        case_id=row["case_id"],
        repeat=row.get("repeat") or 0,
        scores=[{"name": s.get("name"), "value": s.get("value"), "passed": s.get("passed"),
                 "judge": (s.get("details") or {}).get("judge")} for s in row.get("scores") or ()],
        passed=row.get("passed"),
        error=value("error"),
        latency_ms=value("latency_ms"),
        tokens_in=value("tokens_in"),
        tokens_out=value("tokens_out"),
        cost_usd=value("cost_usd"),
        replayed=bool(row.get("replayed") or output.get("replayed")),
    )


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _usage_summary(cases: list[Any]) -> dict[str, Any]:
    """Cost, tokens and latency percentiles of a suite; unknown costs are counted, never taken as 0."""
    costs = [case.cost_usd for case in cases if case.cost_usd is not None]
    latencies = sorted(case.latency_ms for case in cases if case.latency_ms)
    return {
        "cost_usd": sum(costs) if costs else None,
        "cost_unknown": sum(1 for case in cases if case.cost_usd is None and not case.error),
        "tokens_in": sum(case.tokens_in or 0 for case in cases),
        "tokens_out": sum(case.tokens_out or 0 for case in cases),
        "latency_p50_ms": _percentile(latencies, 0.50),
        "latency_p95_ms": _percentile(latencies, 0.95),
    }


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
