"""What the gate checks about judges: that a suite's judge is calibrated well enough, and that a comparison
with the baseline never silently puts scores from different judges or rubrics side by side."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

JudgeKey = tuple[str, str, str]  # metric, judges, rubric hash


def judge_of(score: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The judge provenance of a score dict: the `judge` key of a summary row, or `details.judge` of a stored one."""
    judge = score.get("judge")
    if judge is None:
        judge = (score.get("details") or {}).get("judge")
    return judge if isinstance(judge, Mapping) else None


class AgreementCheck:
    """Collects the judges a run used (from its case rows) and the calibration agreement stored with each."""

    def __init__(self) -> None:
        self.kappas: dict[JudgeKey, float | None] = {}

    def observe(self, row: Mapping[str, Any]) -> None:
        for score in row.get("scores") or ():
            judge = judge_of(score)
            if judge is not None:
                key = (str(judge.get("metric")), str(judge.get("judges")), str(judge.get("rubric_hash")))
                self.kappas[key] = judge.get("kappa")

    def failures(self, minimum: float | None) -> list[str]:
        """One line per judge whose latest calibration is missing or agrees less than `minimum` (Cohen's kappa)."""
        if minimum is None:
            return []
        problems = []
        for (metric, judges, rubric), kappa in sorted(self.kappas.items()):
            if kappa is None:
                problems.append(f"judge {judges} is not calibrated for {metric} (rubric {rubric[:12]}); "
                                f"run tollgate judge calibrate (required kappa >= {minimum:g})")
            elif kappa < minimum:
                problems.append(f"judge {judges} agrees with human labels on {metric} at kappa {kappa:.2f} "
                                f"< required {minimum:g}")
        return problems


def _fingerprints(cases: Iterable[Any]) -> dict[str, set[tuple[str, str]]]:
    found: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for case in cases:
        for score in getattr(case, "scores", None) or ():
            judge = judge_of(score) if isinstance(score, Mapping) else None
            if judge is not None:
                found[str(score.get("name"))].add((str(judge.get("judges")), str(judge.get("rubric_hash"))))
    return found


def judge_changes(cases: Iterable[Any], baseline_cases: Iterable[Any]) -> list[str]:
    """One line per judged score whose judges or rubric differ from the baseline's (scores not comparable)."""
    now, before = _fingerprints(cases), _fingerprints(baseline_cases)
    lines = []
    for name in sorted(now.keys() & before.keys()):
        if now[name] == before[name]:
            continue
        judges_now, judges_before = {j for j, _ in now[name]}, {j for j, _ in before[name]}
        if judges_now != judges_before:
            lines.append(f"{name}: judge changed ({', '.join(sorted(judges_before))} -> "
                         f"{', '.join(sorted(judges_now))}); scores are not comparable")
        else:
            lines.append(f"{name}: rubric changed ({', '.join(sorted(r[:12] for _, r in before[name]))} -> "
                         f"{', '.join(sorted(r[:12] for _, r in now[name]))}); scores are not comparable")
    return lines
