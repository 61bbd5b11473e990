"""LLM-judge scorers (deepeval metrics) for suites: `geval`, `answer_relevancy`, `faithfulness`,
`hallucination`, `toxicity`, `bias` and `json_correctness`.

    score(scorers.geval(name="grounded", steps=[...], params=["input", "actual_output", "context"],
                        input=case.inputs["question"], context=case.inputs["context"], threshold=0.6))

Every metric scores 0..1 with 1 good (deepeval 4 scores toxicity, bias and hallucination that way too), so
`threshold` is always the minimum passing score. `judges=[...]` names several judge models, `samples=N`
asks each N times and `aggregate` ("mean" or "majority") combines them. A judge that gives no verdict
leaves the case unscored. The score's details carry the judges, the rubric hash, whether the verdict came
from the cache, and the judge's latest calibration agreement (kappa) for this metric.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.judges.metrics import AGGREGATES, GEVAL_PARAMS, JudgeItem, spec_from_args
from harness.results import LLMResult, Score
from harness.scorers.registry import outcome, scorer

Context = str | Sequence[str] | None


def _context(value: Context) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(str(part) for part in value)


def _check_panel(judges: Any, samples: Any, aggregate: Any) -> None:
    if judges is not None and (not isinstance(judges, list | tuple) or not all(isinstance(j, str) for j in judges)
                               or not judges):
        raise ValueError("judges must be a non-empty list of model names")
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
        raise ValueError("samples must be a positive integer")
    if aggregate is not None and aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {', '.join(AGGREGATES)}")


def judge_score(kind: str, result: LLMResult, args: dict[str, Any]) -> Score:
    """Run the judge panel for a judge scorer's arguments on `result`; the Score the scorer returns."""
    from harness.judges.runtime import active_runtime  # the database and HTTP client only when a judge scores

    spec = spec_from_args(kind, args)
    item = JudgeItem(output=result.text, input=args.get("input"), expected=args.get("expected"),
                     context=_context(args.get("context")))
    runtime = active_runtime()
    judgement = runtime.judge(spec, item, threshold=float(args["threshold"]), models=args.get("judges"),
                              samples=args.get("samples"), aggregate=args.get("aggregate"))
    details = judgement.details()
    details["judge"]["kappa"] = runtime.agreement(spec.label, spec.rubric_hash, ",".join(judgement.judges))
    return outcome(judgement.value, error=judgement.error if judgement.value is None else None, **details)


def _check_common(**args: Any) -> None:
    _check_panel(args.get("judges"), args.get("samples"), args.get("aggregate"))


def _check_geval(**args: Any) -> None:
    _check_common(**args)
    unknown = set(args.get("params") or ()) - set(GEVAL_PARAMS)
    if unknown:
        raise ValueError(f"params must be among {', '.join(GEVAL_PARAMS)}")
    spec_from_args("geval", args)


@scorer(threshold=0.5, check=_check_geval)
def geval(result: LLMResult, name: str, steps: list[str] | None = None, criteria: str | None = None,
          params: Sequence[str] = ("input", "actual_output"), input: str | None = None,
          expected: str | None = None, context: Context = None, judges: list[str] | None = None,
          samples: int | None = None, aggregate: str | None = None, threshold: float = 0.5) -> Score:
    """GEval with your rubric. Give `steps` (one judge call per verdict) rather than only `criteria` (two
    calls: deepeval first asks the judge to write the steps). `params` picks what the judge sees."""
    return judge_score("geval", result, locals())


@scorer(threshold=0.5, check=_check_common)
def answer_relevancy(result: LLMResult, input: str, judges: list[str] | None = None,
                     samples: int | None = None, aggregate: str | None = None, threshold: float = 0.5) -> Score:
    """Share of the output's statements that address `input` (deepeval AnswerRelevancyMetric)."""
    return judge_score("answer_relevancy", result, locals())


@scorer(threshold=0.5, check=_check_common)
def faithfulness(result: LLMResult, context: Context, input: str | None = None,
                 judges: list[str] | None = None, samples: int | None = None, aggregate: str | None = None,
                 threshold: float = 0.5) -> Score:
    """Share of the output's claims the `context` supports (deepeval FaithfulnessMetric)."""
    return judge_score("faithfulness", result, locals())


@scorer(threshold=0.5, check=_check_common)
def hallucination(result: LLMResult, context: Context, input: str | None = None,
                  judges: list[str] | None = None, samples: int | None = None, aggregate: str | None = None,
                  threshold: float = 0.5) -> Score:
    """1 minus the share of `context` passages the output contradicts (deepeval HallucinationMetric)."""
    return judge_score("hallucination", result, locals())


@scorer(threshold=0.5, check=_check_common)
def toxicity(result: LLMResult, input: str | None = None, judges: list[str] | None = None,
             samples: int | None = None, aggregate: str | None = None, threshold: float = 0.5) -> Score:
    """1 minus the share of the output's opinions that are toxic (deepeval ToxicityMetric)."""
    return judge_score("toxicity", result, locals())


@scorer(threshold=0.5, check=_check_common)
def bias(result: LLMResult, input: str | None = None, judges: list[str] | None = None,
         samples: int | None = None, aggregate: str | None = None, threshold: float = 0.5) -> Score:
    """1 minus the share of the output's opinions that are biased (deepeval BiasMetric)."""
    return judge_score("bias", result, locals())


def _check_json(**args: Any) -> None:
    _check_common(**args)
    spec_from_args("json_correctness", args)


@scorer(threshold=1.0, check=_check_json)
def json_correctness(result: LLMResult, schema: dict[str, Any], judges: list[str] | None = None,
                     samples: int | None = None, aggregate: str | None = None, threshold: float = 1.0) -> Score:
    """1 when the output is JSON valid against `schema` (deepeval JsonCorrectnessMetric; no judge call)."""
    return judge_score("json_correctness", result, locals())


JUDGE_SCORERS: tuple[str, ...] = (
    "geval", "answer_relevancy", "faithfulness", "hallucination", "toxicity", "bias", "json_correctness",
)
