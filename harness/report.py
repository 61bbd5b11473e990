"""The terminal summary of a session: suites, scores, baseline comparison, failing cases and the gate's line."""

from __future__ import annotations

from typing import Any

from harness.gate import format_table
from harness.options import Options
from harness.recorder import Recorder
from harness.verdict import GateVerdict, newly_failing


def write_summary(terminal: Any, recorder: Recorder, options: Options) -> None:
    terminal.write_sep("=", "tollgate")
    terminal.write_line("cases are data: pytest's 'passed' means a case ran; the gate below decides (last line)")
    report = recorder.report()
    if recorder.comparison is not None:
        for line in format_table(recorder.comparison).splitlines():
            terminal.write_line(line)
    else:
        _suite_table(terminal, report["suites"])
        if options.baseline is None:
            terminal.write_line("no baseline given (--tollgate-baseline): scores recorded, nothing compared")
    for name, summary in sorted(report["suites"].items()):
        if summary.get("below_min_score"):
            terminal.write_line(
                f"FAIL {name}: score {summary['score']:.3f} is below min_score {summary['gate']['min_score']}", red=True
            )
        failing = summary.get("failing") or []
        if failing:
            shown = ", ".join(failing[:8]) + (f" (+{len(failing) - 8} more)" if len(failing) > 8 else "")
            terminal.write_line(f"{name}: failing cases: {shown}")
        if summary.get("flaky"):
            terminal.write_line(f"{name}: flaky cases (outcome varies across repeats): {', '.join(summary['flaky'][:8])}")
    if recorder.baseline_error:
        terminal.write_line(f"tollgate: {recorder.baseline_error}", yellow=True)
    for error in recorder.errors:
        terminal.write_line(f"tollgate: {error}", red=True)
    for failure in recorder.gate_failures:
        terminal.write_line(f"FAIL {failure}", red=True)
    _failing_cases(terminal, recorder, options)
    terminal.write_line(f"run {recorder.run_id} recorded ({recorder.rows_seen} case results)")


def write_verdict(terminal: Any, verdict: GateVerdict) -> None:
    """The session's last line: after pytest's own "N passed", so a green count never hides a red gate."""
    if verdict.passed:
        terminal.write_line(verdict.line(), green=True, bold=True)
    else:
        terminal.write_line(verdict.line(), red=verdict.enforced, yellow=not verdict.enforced, bold=True)


def _failing_cases(terminal: Any, recorder: Recorder, options: Options) -> None:
    """What the model said on the cases that fail now (with a baseline: that passed there), so nobody has to
    open the dashboard to see it."""
    if options.show_failures == 0:
        return
    shown, total = newly_failing(recorder, options.show_failures)
    if not shown:
        return
    kind = "newly failing" if recorder.comparison is not None else "failing"
    more = f" (first {len(shown)} of {total}; --tollgate-show-failures N shows more)" if total > len(shown) else ""
    terminal.write_line(f"{kind} cases{more}:")
    for case in shown:
        terminal.write_line(f"  {case.suite}/{case.case_id}", bold=True)
        terminal.write_line(f"    input:    {case.input}")
        terminal.write_line(f"    expected: {case.expected}")
        terminal.write_line(f"    answer:   {case.answer}")
        if case.error:
            terminal.write_line(f"    error:    {case.error}")


def _suite_table(terminal: Any, suites: dict[str, dict[str, Any]]) -> None:
    header = ("suite", "cases", "score", "95% CI", "errors")
    rows = [header]
    for name, summary in sorted(suites.items()):
        score = summary.get("score")
        low, high = summary.get("ci_low"), summary.get("ci_high")
        interval = f"[{low:.3f}, {high:.3f}]" if low is not None and high is not None else "-"
        rows.append((name, str(summary.get("cases", 0)), "-" if score is None else f"{score:.3f}", interval,
                     str(summary.get("errors", 0))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        terminal.write_line("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
