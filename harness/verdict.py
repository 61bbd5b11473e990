"""What a finished session means: the gate's verdict in one line, and the cases a reader should look at first.

The terminal summary and the markdown summary both read these, so they can never disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from core.redaction import redact_pii

if TYPE_CHECKING:
    from harness.options import Options
    from harness.recorder import Recorder

SNIPPET = 160  # characters of an input, expected value or answer shown per failing case


@dataclass(frozen=True, slots=True)
class FailedCase:
    """A failing case as a person reads it: what went in, what was expected and what the model said."""

    suite: str
    case_id: str
    input: str
    expected: str
    answer: str
    error: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any], expected: Any) -> FailedCase:
        output = row.get("output") or {}
        return cls(
            suite=str(row["suite"]),
            case_id=str(row["case_id"]),
            input=snippet(row.get("inputs")),
            expected=snippet(expected),
            answer=snippet(output.get("text")),
            error=snippet(row.get("error") or output.get("error")) or None,
        )


@dataclass(frozen=True, slots=True)
class GateVerdict:
    """The gate's decision: passed, or failed with one short reason per failed check."""

    passed: bool
    enforced: bool  # false under --tollgate-no-gate: a failure is reported, never turned into exit status 1
    reasons: tuple[str, ...]
    scope: str  # what was checked, for the PASSED line: "2 suites, 60 cases, vs baseline main"

    def line(self) -> str:
        if self.passed:
            return f"tollgate gate: PASSED ({self.scope})"
        reasons = "; ".join(self.reasons)
        if self.enforced:
            return f"tollgate gate: FAILED ({reasons})"
        return f"tollgate gate: WOULD FAIL ({reasons}) - not enforced: --tollgate-no-gate given"


def gate_verdict(recorder: Recorder, options: Options) -> GateVerdict:
    """The verdict of the recorded run, with the numbers behind each failed check."""
    suites = recorder.report()["suites"]
    reasons: list[str] = []
    comparison = recorder.comparison
    if comparison is not None:
        for row in comparison.regressions:
            reasons.append(f"suite {row.suite}: score {_number(row.score)} < baseline {_number(row.baseline_score)}, "
                           f"p{_p_value(row.p_value)}")
        if comparison.failed and not comparison.regressions:
            reasons.append("replayed suites under replay policy 'fail': " +
                           ", ".join(row.suite for row in comparison.replayed_suites))
    for name, summary in sorted(suites.items()):
        if summary.get("below_min_score"):
            reasons.append(f"suite {name}: score {_number(summary['score'])} < min_score "
                           f"{summary['gate']['min_score']}")
    if recorder.baseline_error:
        reasons.append(f"baseline not usable: {options.baseline!r}")
    if recorder.gate_failures:
        reasons.append("judge agreement")
    cases = sum(int(summary.get("cases") or 0) for summary in suites.values())
    against = f"vs baseline {options.baseline}" if comparison is not None else "no baseline compared"
    scope = f"{len(suites)} suite{'s' if len(suites) != 1 else ''}, {cases} cases, {against}"
    return GateVerdict(passed=not reasons, enforced=options.gate, reasons=tuple(reasons), scope=scope)


def newly_failing(recorder: Recorder, limit: int) -> tuple[list[FailedCase], int]:
    """Up to `limit` failing cases, newest failures first: with a baseline the cases that passed there and fail
    now, without one every failing case. Returns them and how many there were in all."""
    comparison = recorder.comparison
    compared = {row.suite: row for row in comparison.rows} if comparison is not None else {}
    ids: list[tuple[str, str]] = []
    for name, summary in sorted(recorder.report()["suites"].items()):
        row = compared.get(name)
        failing = row.new_failures if row is not None and row.verdict != "no-baseline" else summary.get("failing")
        ids += [(name, case_id) for case_id in failing or ()]
    shown = []
    for suite, case_id in ids[:max(limit, 0)]:
        detail = recorder.failures.get((suite, case_id))
        shown.append(detail or FailedCase(suite, case_id, input="", expected="", answer="", error="(not kept)"))
    return shown, len(ids)


def snippet(value: Any, width: int = SNIPPET) -> str:
    """A value on one line with its PII redacted, cut to `width` characters.

    Redacted because these snippets leave the machine: CI logs and the markdown summary posted on a pull
    request are read by everyone who can read the repository. Redacted before the cut, so a value the cut
    would halve is still recognised."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    text, _ = redact_pii(" ".join(text.split()))
    return text if len(text) <= width else text[: width - 3] + "..."


def _number(value: Any) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def _p_value(value: float) -> str:
    if math.isnan(value):
        return "=-"
    return "<0.001" if value < 0.001 else f"={value:.3f}"
