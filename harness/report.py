"""The terminal summary of a session: suites, scores, baseline comparison and verdicts."""

from __future__ import annotations

from typing import Any

from harness.gate import format_table
from harness.options import Options
from harness.recorder import Recorder


def write_summary(terminal: Any, recorder: Recorder, options: Options) -> None:
    terminal.write_sep("=", "tollgate")
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
    terminal.write_line(f"run {recorder.run_id} recorded ({recorder.rows_seen} case results)")
    _verdict_line(terminal, recorder, options)


def _verdict_line(terminal: Any, recorder: Recorder, options: Options) -> None:
    """One line that says whether the gate passed, so a green test count never hides a red gate."""
    failed = []
    if recorder.comparison is not None:
        failed += [f"regression in {row.suite}" for row in recorder.comparison.regressions]
    failed += [f"{name} below min_score" for name, summary in sorted(recorder.report()["suites"].items())
               if summary.get("below_min_score")]
    if recorder.baseline_error:
        failed.append("baseline not usable")
    if recorder.gate_failures:
        failed.append("judge agreement")
    if not failed:
        terminal.write_line("tollgate gate: PASSED", green=True)
    elif options.gate:
        terminal.write_line("tollgate gate: FAILED (" + "; ".join(failed) + ")", red=True, bold=True)
    else:
        terminal.write_line("tollgate gate: would fail (" + "; ".join(failed) + "), --tollgate-no-gate given",
                            yellow=True)


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
