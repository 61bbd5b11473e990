"""Judge metrics defined once, in configuration or a file, and used by suites, calibration and online evaluation.

A definition is a scorer config: `{name: geval, args: {name: ..., steps: [...], params: [...]}, threshold: 0.6}`.
Because a suite and `tollgate judge calibrate` read the same definition, they share one rubric hash, and a
calibration applies to exactly the verdicts the suite gets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from harness.errors import HarnessError
from harness.judges.metrics import KINDS, JudgeItem, MetricSpec, spec_from_args

# Arguments that describe the case being judged rather than the metric.
CASE_ARGS: tuple[str, ...] = ("input", "expected", "context")


@dataclass(frozen=True)
class JudgeMetric:
    """A judge scorer kind with its metric arguments and pass mark."""

    kind: str
    args: dict[str, Any] = field(default_factory=dict)
    threshold: float = 0.5

    @property
    def spec(self) -> MetricSpec:
        return spec_from_args(self.kind, self.args)

    @property
    def label(self) -> str:
        return self.spec.label

    def scorer(self, **case_args: Any) -> Any:
        """The scorer for one case: `metric.scorer(input=..., context=...)`."""
        from harness.scorers import get_scorer

        return get_scorer(self.kind)(**{**self.args, **case_args}, threshold=self.threshold)

    def item(self, output: str, *, input: str | None = None, expected: str | None = None,
             context: tuple[str, ...] = ()) -> JudgeItem:
        return JudgeItem(output=output, input=input, expected=expected, context=context)

    def panel_args(self) -> dict[str, Any]:
        """The judge panel overrides in the definition (judges, samples, aggregate), for `JudgeRuntime.judge`."""
        return {"models": self.args.get("judges"), "samples": self.args.get("samples"),
                "aggregate": self.args.get("aggregate")}


def metric_from_config(config: Mapping[str, Any] | str, *, where: str = "judge metric") -> JudgeMetric:
    """A `JudgeMetric` from a scorer config (a mapping, or a bare metric kind needing no arguments)."""
    if isinstance(config, str):
        config = {"name": config}
    if not isinstance(config, Mapping) or config.get("name") not in KINDS:
        raise HarnessError(f"{where}: 'name' must be one of {', '.join(KINDS)}")
    unknown = set(config) - {"name", "args", "threshold"}
    if unknown:
        raise HarnessError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    args = dict(config.get("args") or {})
    case = sorted(set(args) & set(CASE_ARGS))
    if case:
        raise HarnessError(f"{where}: {', '.join(case)} belong to each case, not to the metric definition")
    threshold = config.get("threshold", 0.5)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        raise HarnessError(f"{where}: threshold must be a number in 0..1")
    metric = JudgeMetric(str(config["name"]), args, float(threshold))
    try:
        metric.spec.check()
    except ValueError as exc:
        raise HarnessError(f"{where}: {exc}") from exc
    return metric


def load_metric_file(path: str | Path) -> JudgeMetric:
    """A metric definition from a `.yaml`/`.yml`/`.json` file."""
    target = Path(path)
    try:
        text = target.read_text(encoding="utf-8")
    except OSError as exc:
        raise HarnessError(f"{target}: cannot read judge metric ({exc.strerror})") from exc
    try:
        data = orjson.loads(text) if target.suffix == ".json" else yaml.safe_load(text)
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        raise HarnessError(f"{target}: not valid {'JSON' if target.suffix == '.json' else 'YAML'}") from exc
    return metric_from_config(data, where=str(target))


def resolve_metric(ref: str, configured: Mapping[str, Mapping[str, Any]] | None = None) -> JudgeMetric:
    """`ref` as a metric named in the settings (`judges.metrics`), a definition file, or a built-in kind."""
    if configured and ref in configured:
        return metric_from_config(configured[ref], where=f"judges.metrics.{ref}")
    if ref.endswith((".yaml", ".yml", ".json")):
        return load_metric_file(ref)
    if ref in KINDS:
        return metric_from_config(ref, where=ref)
    known = sorted(configured or ()) + [kind for kind in KINDS if kind != "geval"]
    raise HarnessError(f"unknown judge metric {ref!r}: name one from judges.metrics, a .yaml/.json definition "
                       f"file, or a built-in ({', '.join(known)})")
