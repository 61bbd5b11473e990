"""A PR-ready markdown summary of a session's gate (`--tollgate-markdown FILE`, and GitHub's job summary).

Per suite: score, baseline, delta, 95% CI, p and verdict; then the newly failing cases with their expected
value and a snippet of the model's answer; then judge calls and cost. The text is the same for the file and
for `$GITHUB_STEP_SUMMARY` (to which it is appended, as GitHub Actions expects).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from harness.options import Options
from harness.recorder import Recorder
from harness.verdict import FailedCase, GateVerdict, newly_failing


def render_markdown(recorder: Recorder, options: Options, verdict: GateVerdict,
                    judges: dict[str, int] | None = None) -> str:
    """The summary as GitHub-flavoured markdown."""
    icon = ":white_check_mark:" if verdict.passed else (":x:" if verdict.enforced else ":warning:")
    lines = [f"## {icon} {verdict.line()}", ""]
    lines += ["Cases are data: pytest's *passed* means a case ran; the gate decides from the scores below.", ""]
    lines += _suite_table(recorder)
    lines += _failures(recorder, options)
    lines += ["", _usage(recorder, judges)]
    run = f"Run `{recorder.run_id}`"
    lines.append(run + (f" compared with baseline `{options.baseline}`." if recorder.comparison is not None
                        else " (no baseline compared)."))
    if recorder.baseline_error:
        lines.append(f"**{_text(recorder.baseline_error)}**")
    return "\n".join(lines) + "\n"


def write_markdown(text: str, options: Options, rootpath: Path) -> list[Path]:
    """Write the summary to `--tollgate-markdown` and append it to `$GITHUB_STEP_SUMMARY`; the paths written."""
    written = []
    if options.markdown:
        path = Path(options.markdown)
        path = path if path.is_absolute() else rootpath / path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    if options.step_summary:
        step = Path(options.step_summary)
        with step.open("a", encoding="utf-8") as handle:
            handle.write(text)
        written.append(step)
    return written


def _suite_table(recorder: Recorder) -> list[str]:
    lines = ["| suite | cases | score | baseline | delta | 95% CI | p | verdict |",
             "|---|---:|---:|---:|---:|---|---:|---|"]
    suites = recorder.report()["suites"]
    compared = {row.suite: row for row in recorder.comparison.rows} if recorder.comparison is not None else {}
    for name, summary in sorted(suites.items()):
        row = compared.get(name)
        if row is not None:
            interval = "-" if math.isnan(row.ci_low) else f"[{row.ci_low:+.3f}, {row.ci_high:+.3f}] (delta)"
            p_value = row.p_value_improved if row.delta > 0 else row.p_value
            cells = [name, str(row.cases), _number(row.score), _number(row.baseline_score),
                     _number(row.delta, signed=True), interval, _p(p_value), f"**{row.verdict}**"]
        else:
            low, high = summary.get("ci_low"), summary.get("ci_high")
            interval = "-" if low is None or high is None else f"[{low:.3f}, {high:.3f}]"
            verdict = "below min_score" if summary.get("below_min_score") else "no baseline"
            cells = [name, str(summary.get("cases", 0)), _number(summary.get("score")), "-", "-", interval, "-",
                     f"**{verdict}**"]
        lines.append("| " + " | ".join(_text(cell) for cell in cells) + " |")
    return lines


def _failures(recorder: Recorder, options: Options) -> list[str]:
    shown, total = newly_failing(recorder, options.show_failures)
    if not shown:
        return []
    kind = "Newly failing cases" if recorder.comparison is not None else "Failing cases"
    more = f" (first {len(shown)} of {total})" if total > len(shown) else f" ({total})"
    lines = ["", f"### {kind}{more}", ""]
    for case in shown:
        lines += _case(case)
    return lines


def _case(case: FailedCase) -> list[str]:
    lines = [f"- **{case.suite}/{case.case_id}**",
             f"  - input: {_code(case.input)}",
             f"  - expected: {_code(case.expected)}",
             f"  - answer: {_code(case.answer)}"]
    if case.error:
        lines.append(f"  - error: {_code(case.error)}")
    return lines


def _usage(recorder: Recorder, judges: dict[str, int] | None) -> str:
    suites = recorder.report()["suites"].values()
    costs = [summary["cost_usd"] for summary in suites if summary.get("cost_usd") is not None]
    unknown = sum(int(summary.get("cost_unknown") or 0) for summary in suites)
    cost = f"${sum(costs):.4f}" if costs else "unknown"
    if unknown:
        cost += f" ({unknown} calls without a known price)"
    tokens = sum(int(summary.get("tokens_in") or 0) + int(summary.get("tokens_out") or 0) for summary in suites)
    if judges:
        judged = (f"{judges.get('calls', 0)} judge calls, {judges.get('cached', 0)} verdicts from the cache, "
                  f"{judges.get('failed', 0)} failed")
    else:
        judged = "0 judge calls"
    return f"**Cost:** {cost} for model calls ({tokens} tokens). **Judges:** {judged}."


def _number(value: Any, *, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _p(value: float) -> str:
    if math.isnan(value):
        return "-"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _text(value: str) -> str:
    """Safe inside a table cell: pipes escaped, one line."""
    return " ".join(str(value).split()).replace("|", "\\|")


def _code(value: str) -> str:
    if not value:
        return "_(empty)_"
    return "`` " + " ".join(value.split()).replace("`", "'") + " ``"
