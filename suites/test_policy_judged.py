"""Policy answers graded by an LLM judge: a GEval rubric scored by the embedded model through the sidecar.

The rubric lives in `datasets/calibration/policy_grounded.yaml`, shared with its calibration set, so
`tollgate judge calibrate` measures the very judge and rubric this suite uses. The 135M embedded model is a
weak judge (see docs/judges.md for its agreement with the human labels); the suite shows the mechanics:
one judge call per case on the first run, none on a re-run with unchanged answers (the judge cache).
"""

from pathlib import Path

import pytest

from harness import scorers
from harness.judges import load_metric_file

GROUNDED = load_metric_file(Path(__file__).parent.parent / "datasets" / "calibration" / "policy_grounded.yaml")


@pytest.mark.dataset("datasets/policy_judged.jsonl")
@pytest.mark.prompt("policy_faq")
@pytest.mark.tollgate_suite("policy_judged", max_drop=0.2)
def test_policy_judged(case, result, score):
    score(
        scorers.regex(case.expected["fact"], flags="IGNORECASE"),
        GROUNDED.scorer(input=case.inputs["question"], context=case.inputs["context"]),
    )
