"""What a test declares through its markers: its dataset, its prompt and its suite's gate settings."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from core.prompts import PromptRegistry, RenderedPrompt
from harness.datasets import Case, Dataset, filter_cases, load_dataset

_GATE_KEYS = ("max_drop", "alpha", "min_cases", "min_score")


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    gate: dict[str, float] = field(default_factory=dict)
    strict: bool = False
    repeat: int | None = None


@dataclass(frozen=True)
class PromptSpec:
    name: str
    variant: str | None = None
    variables: Mapping[str, Any] | Callable[[Case], Mapping[str, Any]] | None = None
    model: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def render(self, registry: PromptRegistry, case: Case | None) -> RenderedPrompt:
        values: dict[str, Any] = dict(case.inputs) if case is not None else {}
        if callable(self.variables):
            values.update(self.variables(case) if case is not None else {})
        elif self.variables:
            values.update(self.variables)
        return registry.render(self.name, values, variant=self.variant)

    def request(self, rendered: RenderedPrompt) -> dict[str, Any]:
        body = rendered.request_body(model=self.model)
        body.update(self.parameters)
        return body


def suite_spec(node: pytest.Item | pytest.Function) -> SuiteSpec:
    marker = node.get_closest_marker("tollgate_suite")
    default_name = getattr(node, "originalname", None) or node.name
    if marker is None:
        return SuiteSpec(name=default_name)
    kwargs = dict(marker.kwargs)
    name = (marker.args[0] if marker.args else kwargs.pop("name", None)) or default_name
    gate = {key: float(kwargs.pop(key)) for key in _GATE_KEYS if kwargs.get(key) is not None}
    strict = bool(kwargs.pop("strict", False))
    repeat = kwargs.pop("repeat", None)
    if kwargs:
        raise pytest.UsageError(f"tollgate_suite on {node.nodeid}: unknown argument(s) {', '.join(sorted(kwargs))}")
    return SuiteSpec(name=str(name), gate=gate, strict=strict, repeat=int(repeat) if repeat else None)


def prompt_spec(node: Any) -> PromptSpec | None:
    marker = node.get_closest_marker("prompt")
    if marker is None:
        return None
    kwargs = dict(marker.kwargs)
    name = marker.args[0] if marker.args else kwargs.pop("name", None)
    if not name:
        raise pytest.UsageError(f"prompt marker on {node.nodeid} needs a prompt name")
    return PromptSpec(
        name=name,
        variant=kwargs.pop("variant", None),
        variables=kwargs.pop("variables", None),
        model=kwargs.pop("model", None),
        parameters=kwargs,
    )


def dataset_cases(marker: pytest.Mark, rootpath: Path) -> tuple[Dataset, list[Case]]:
    """Load the marker's dataset (relative to the rootdir) and apply its tag filters."""
    path = marker.args[0] if marker.args else marker.kwargs.get("path")
    if not path:
        raise pytest.UsageError("the dataset marker needs a path")
    resolved = Path(path) if Path(path).is_absolute() else rootpath / path
    dataset = load_dataset(resolved)
    cases = filter_cases(dataset.cases, tags=marker.kwargs.get("tags"), exclude_tags=marker.kwargs.get("exclude_tags"))
    return dataset, cases
