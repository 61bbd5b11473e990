"""Which deepeval metric a judge runs (`MetricSpec`), its rubric hash, and the item it judges (`JudgeItem`).

The rubric hash covers everything that changes what the judge is asked: the metric kind and name, GEval's
criteria, steps and parameters, a JSON schema, and deepeval's version (its prompt templates change between
releases). A verdict is only reused, compared or trusted for the same rubric hash.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from typing import Any

import orjson

KINDS: tuple[str, ...] = (
    "geval", "answer_relevancy", "faithfulness", "hallucination", "toxicity", "bias", "json_correctness",
)
# Which test-case fields each metric reads, besides the output.
_NEEDS: dict[str, tuple[str, ...]] = {
    "answer_relevancy": ("input",),
    "faithfulness": ("context",),
    "hallucination": ("context",),
    "json_correctness": ("schema",),
}
GEVAL_PARAMS: tuple[str, ...] = ("input", "actual_output", "expected_output", "context")
AGGREGATES: tuple[str, ...] = ("mean", "majority")


@dataclass(frozen=True, slots=True)
class JudgeItem:
    """What is judged: the output, and the input, reference and context the metric may read."""

    output: str
    input: str | None = None
    expected: str | None = None
    context: tuple[str, ...] = ()

    def key_data(self) -> list[Any]:
        return [self.input, self.output, self.expected, list(self.context)]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """A deepeval metric kind with the options that define its rubric."""

    kind: str
    name: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """`geval:policy_grounded`, `toxicity`, ...: the metric's name in scores, cache and calibrations."""
        return f"{self.kind}:{self.name}" if self.name else self.kind

    @property
    def rubric_hash(self) -> str:
        payload = orjson.dumps([self.kind, self.name, self.options, _deepeval_version()],
                               option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(payload).hexdigest()

    def check(self) -> None:
        """Raise ValueError when the options cannot make a metric (caught when a scorer is built)."""
        if self.kind not in KINDS:
            raise ValueError(f"unknown judge metric {self.kind!r}; known: {', '.join(KINDS)}")
        if self.kind == "geval":
            steps, criteria = self.options.get("steps"), self.options.get("criteria")
            if not self.name:
                raise ValueError("geval needs a name")
            if not steps and not criteria:
                raise ValueError("geval needs evaluation steps (one judge call) or criteria (two calls)")
            if steps is not None and (not isinstance(steps, list) or not all(isinstance(s, str) for s in steps)):
                raise ValueError("geval steps must be a list of strings")
            unknown = set(self.options.get("params") or ()) - set(GEVAL_PARAMS)
            if unknown:
                raise ValueError(f"geval params must be among {', '.join(GEVAL_PARAMS)}, got {sorted(unknown)}")
        if self.kind == "json_correctness" and not isinstance(self.options.get("schema"), dict):
            raise ValueError("json_correctness needs schema= (a JSON schema object)")

    def missing(self, item: JudgeItem) -> str | None:
        """Why `item` cannot be judged by this metric (a field it reads is empty), else None."""
        needs = list(_NEEDS.get(self.kind, ()))
        if self.kind == "geval":
            needs = [p for p in self.options.get("params") or () if p != "actual_output"]
        for need in needs:
            value = {"input": item.input, "context": item.context, "expected_output": item.expected,
                     "schema": self.options.get("schema")}.get(need, True)
            if not value:
                return f"{self.label} needs {need}"
        return None


def _deepeval_version() -> str:
    from importlib.metadata import version

    return version("deepeval")


def build_metric(spec: MetricSpec, model: Any) -> Any:
    """The deepeval metric object for `spec`, judging with `model`. Reasons are only asked where they are part
    of the verdict (GEval): each `include_reason` costs one more judge call."""
    from deepeval import metrics as m
    from deepeval.test_case import SingleTurnParams

    common: dict[str, Any] = {"model": model, "async_mode": True, "verbose_mode": False}
    with warnings.catch_warnings():
        # Toxicity, bias and hallucination announce (once, as a DeprecationWarning) that they now score in the
        # same direction as every other metric: 1 is good. Tollgate relies on exactly that.
        warnings.simplefilter("ignore", DeprecationWarning)
        if spec.kind == "geval":
            params = [_PARAM_NAMES[p](SingleTurnParams) for p in spec.options.get("params") or ("input", "actual_output")]
            return m.GEval(name=spec.name, evaluation_params=params, criteria=spec.options.get("criteria"),
                           evaluation_steps=spec.options.get("steps"), **common)
        if spec.kind == "json_correctness":
            return m.JsonCorrectnessMetric(expected_schema=_SchemaModel(spec.options["schema"]),  # type: ignore[arg-type]
                                           include_reason=False, **common)
        classes = {
            "answer_relevancy": m.AnswerRelevancyMetric, "faithfulness": m.FaithfulnessMetric,
            "hallucination": m.HallucinationMetric, "toxicity": m.ToxicityMetric, "bias": m.BiasMetric,
        }
        return classes[spec.kind](include_reason=False, **common)


_PARAM_NAMES: dict[str, Any] = {
    "input": lambda p: p.INPUT,
    "actual_output": lambda p: p.ACTUAL_OUTPUT,
    "expected_output": lambda p: p.EXPECTED_OUTPUT,
    "context": lambda p: p.CONTEXT,
}


def build_test_case(item: JudgeItem) -> Any:
    """The deepeval test case for `item`; context serves both as context and as retrieval context."""
    from deepeval.test_case import LLMTestCase

    context = list(item.context) or None
    return LLMTestCase(input=item.input or "", actual_output=item.output, expected_output=item.expected,
                       context=context, retrieval_context=list(context) if context else None)


class _SchemaModel:
    """Stands in for the pydantic model `JsonCorrectnessMetric` expects, validating with a JSON schema."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema

    def model_json_schema(self) -> dict[str, Any]:
        return self.schema

    def model_validate_json(self, text: str) -> Any:
        import jsonschema

        try:
            document = orjson.loads(text)
            jsonschema.validate(document, self.schema)
        except (orjson.JSONDecodeError, jsonschema.ValidationError) as exc:
            # The metric scores 0 on pydantic's ValidationError (and lets anything else escape).
            raise _validation_error(str(getattr(exc, "message", exc))) from exc
        return document


def _validation_error(message: str) -> Exception:
    from pydantic_core import ValidationError

    return ValidationError.from_exception_data(
        "output", [{"type": "value_error", "loc": (), "input": None, "ctx": {"error": ValueError(message)}}]
    )


def spec_from_args(kind: str, args: dict[str, Any]) -> MetricSpec:
    """The spec a judge scorer's arguments describe (only the rubric-defining ones count); ValueError when
    they cannot make a metric."""
    if kind == "geval":
        options = {"steps": args.get("steps"), "criteria": args.get("criteria"),
                   "params": list(args.get("params") or ("input", "actual_output"))}
        spec = MetricSpec("geval", str(args.get("name") or ""), options)
    elif kind == "json_correctness":
        spec = MetricSpec(kind, "", {"schema": args.get("schema")})
    else:
        spec = MetricSpec(kind)
    spec.check()
    return spec
