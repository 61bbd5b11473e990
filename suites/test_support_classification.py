"""Support triage: each customer message gets one of five labels, enforced by the prompt's enum schema."""

import pytest

from harness import scorers

LABELS = ["booking_change", "cancellation", "refund", "complaint", "other"]
LABEL_SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": LABELS}},
    "required": ["label"],
    "additionalProperties": False,
}


@pytest.mark.dataset("datasets/support_messages.jsonl")
@pytest.mark.prompt("support_classify")
@pytest.mark.tollgate_suite("support_classification", max_drop=0.05, min_score=0.2)
def test_support_classification(case, result, score):
    score(
        scorers.json_schema(LABEL_SCHEMA),
        scorers.field_match({"label": case.expected}),
    )
