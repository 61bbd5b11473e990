"""The plugin's command-line options (group `tollgate`), each with an ini equivalent, resolved once."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.recording import RecordMode

# (option, ini name, help, default)
_OPTIONS: list[tuple[str, str, str, str | None]] = [
    ("--tollgate-url", "tollgate_url", "sidecar base URL (…/v1); default: start the embedded one", None),
    ("--tollgate-config", "tollgate_config", "tollgate.yaml for the sidecar the plugin starts", None),
    ("--tollgate-baseline", "tollgate_baseline",
     "compare against: a run id, a baseline name, latest-on-branch[:BRANCH], latest, or a .json file", None),
    ("--tollgate-save-baseline", "tollgate_save_baseline", "save this run as the named baseline", None),
    ("--tollgate-export", "tollgate_export", "write this run as a baseline JSON file (e.g. suites/baselines/main.json)",
     None),
    ("--tollgate-repeat", "tollgate_repeat", "run every case N times (flaky detection, pass rates)", "1"),
    ("--tollgate-record", "tollgate_record", "model responses: off, record, replay or auto", "off"),
    ("--tollgate-recordings", "tollgate_recordings", "folder of recorded responses", "recordings"),
    ("--tollgate-report", "tollgate_report", "write the JSON report here", None),
    ("--tollgate-max-drop", "tollgate_max_drop", "default tolerated score drop per suite", "0.02"),
    ("--tollgate-alpha", "tollgate_alpha", "significance level of the paired test", "0.05"),
    ("--tollgate-concurrency", "tollgate_concurrency", "model calls in flight at once", "16"),
    ("--tollgate-prompts", "tollgate_prompts", "folder of prompt files", "prompts"),
    ("--tollgate-stream", "tollgate_stream", "stream model calls to measure time to first token (true/false)", "true"),
    ("--tollgate-label", "tollgate_label", "a label stored with this run", None),
    ("--tollgate-allow-cache", "tollgate_allow_cache",
     "let the sidecar answer from its response cache (true/false; off: every call is a fresh answer)", "false"),
    ("--tollgate-min-judge-agreement", "tollgate_min_judge_agreement",
     "fail the gate when a judge's latest calibration (Cohen's kappa) is below this or missing", None),
    ("--tollgate-show-failures", "tollgate_show_failures",
     "after the gate table, show up to N newly failing cases with input, expected value and answer (0: none)", "5"),
    ("--tollgate-markdown", "tollgate_markdown",
     "write a PR-ready markdown summary of the gate here (also appended to $GITHUB_STEP_SUMMARY when set)", None),
]


def option_dests() -> list[str]:
    """The destinations of the value options (all default to None on the command line)."""
    return [ini for _, ini, _, _ in _OPTIONS]


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("tollgate", "Tollgate LLM regression suites")
    for flag, ini, help_text, default in _OPTIONS:
        group.addoption(flag, dest=ini, default=None, help=f"{help_text} (ini: {ini})")
        parser.addini(ini, help=help_text, default=default)
    group.addoption("--tollgate-no-gate", dest="tollgate_no_gate", action="store_true",
                    help="record and report, but never fail the session on a regression")


@dataclass(frozen=True)
class Options:
    url: str | None
    config_file: str | None
    baseline: str | None
    save_baseline: str | None
    export: str | None
    repeat: int
    record: RecordMode
    recordings: Path
    report: str | None
    max_drop: float
    alpha: float
    concurrency: int
    prompts: Path
    stream: bool
    label: str | None
    gate: bool
    allow_cache: bool = False
    min_judge_agreement: float | None = None
    show_failures: int = 5
    markdown: str | None = None
    step_summary: str | None = None  # $GITHUB_STEP_SUMMARY: GitHub Actions' job summary file, when running there


def read_options(config: pytest.Config) -> Options:
    """Command line wins over ini, ini over the defaults; a bad value is a usage error with one line."""

    def value(name: str) -> str | None:
        given = config.getoption(name)
        if given is not None:
            return str(given)
        ini = config.getini(name)
        return str(ini) if ini not in (None, "") else None

    try:
        return Options(
            url=value("tollgate_url"),
            config_file=value("tollgate_config"),
            baseline=value("tollgate_baseline"),
            save_baseline=value("tollgate_save_baseline"),
            export=value("tollgate_export"),
            repeat=_positive_int("tollgate_repeat", value("tollgate_repeat") or "1"),
            record=RecordMode.parse(value("tollgate_record") or "off"),
            recordings=Path(value("tollgate_recordings") or "recordings"),
            report=value("tollgate_report"),
            max_drop=float(value("tollgate_max_drop") or 0.02),
            alpha=float(value("tollgate_alpha") or 0.05),
            concurrency=_positive_int("tollgate_concurrency", value("tollgate_concurrency") or "16"),
            prompts=Path(value("tollgate_prompts") or "prompts"),
            stream=(value("tollgate_stream") or "true").lower() in ("1", "true", "yes", "on"),
            label=value("tollgate_label"),
            gate=not config.getoption("tollgate_no_gate"),
            allow_cache=(value("tollgate_allow_cache") or "false").lower() in ("1", "true", "yes", "on"),
            min_judge_agreement=_optional_float(value("tollgate_min_judge_agreement")),
            show_failures=_count("tollgate_show_failures", value("tollgate_show_failures") or "5"),
            markdown=value("tollgate_markdown"),
            step_summary=os.environ.get("GITHUB_STEP_SUMMARY") or None,
        )
    except ValueError as exc:
        raise pytest.UsageError(f"tollgate: {exc}") from exc


def _optional_float(text: str | None) -> float | None:
    return None if text is None else float(text)


def _count(name: str, text: str) -> int:
    number = int(text)
    if number < 0:
        raise ValueError(f"{name} must be 0 or more, got {number}")
    return number


def _positive_int(name: str, text: str) -> int:
    number = int(text)
    if number < 1:
        raise ValueError(f"{name} must be at least 1, got {number}")
    return number
