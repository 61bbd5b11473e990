"""`tollgate bench`: a load generator and latency benchmark for any OpenAI-compatible chat endpoint.

Modules: `workload` (what is sent), `timing` (one request measured), `runner` (sequential, sweep and rate
modes), `stats` (percentiles, SLOs, goodput), `results` (the run's data), `storage` (JSON, CSV, history,
baselines), `rules` (regression rules and the comparison), `report` (the text table), `progress`.
"""

from harness.bench.errors import BenchError
from harness.bench.progress import LineProgress, Progress, SilentProgress, make_progress
from harness.bench.report import format_level, format_run
from harness.bench.results import BenchRun, LevelResult
from harness.bench.rules import (
    Comparison,
    RegressionRule,
    RuleOutcome,
    compare_runs,
    parse_rule,
    parse_rules,
    report_only_rules,
)
from harness.bench.runner import MODES, BenchPlan, poisson_arrivals, run_bench, run_bench_async
from harness.bench.stats import METRICS, SLO, describe, parse_slos, summarize
from harness.bench.storage import (
    load_reference,
    read_csv,
    read_json,
    save_baseline,
    store_run,
    write_csv,
    write_json,
)
from harness.bench.timing import BenchClient, RequestRecord, chat_url
from harness.bench.workload import DEFAULT_PROMPT, Workload, build_workload

__all__ = [
    "DEFAULT_PROMPT",
    "METRICS",
    "MODES",
    "SLO",
    "BenchClient",
    "BenchError",
    "BenchPlan",
    "BenchRun",
    "Comparison",
    "LevelResult",
    "LineProgress",
    "Progress",
    "RegressionRule",
    "RequestRecord",
    "RuleOutcome",
    "SilentProgress",
    "Workload",
    "build_workload",
    "chat_url",
    "compare_runs",
    "describe",
    "format_level",
    "format_run",
    "load_reference",
    "make_progress",
    "parse_rule",
    "parse_rules",
    "parse_slos",
    "poisson_arrivals",
    "read_csv",
    "read_json",
    "report_only_rules",
    "run_bench",
    "run_bench_async",
    "save_baseline",
    "store_run",
    "summarize",
    "write_csv",
    "write_json",
]
