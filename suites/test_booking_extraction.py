"""Booking extraction: a customer's hotel request becomes the JSON the booking form is filled from."""

import pytest

from harness import scorers

# The contract the booking form relies on, kept here rather than read from the prompt file: a prompt edit
# that drops or loosens the prompt's own output_schema must fail this suite, not silently change the check.
BOOKING_SCHEMA = {
    "type": "object",
    "properties": {
        "destination": {"type": "string", "minLength": 1},
        "check_in": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
        "nights": {"type": "integer", "minimum": 1},
        "guests": {"type": "integer", "minimum": 1},
    },
    "required": ["destination", "check_in", "nights", "guests"],
    "additionalProperties": False,
}


@pytest.mark.dataset("datasets/booking_requests.jsonl")
@pytest.mark.prompt("booking_extract")
@pytest.mark.tollgate_suite("booking_extraction", max_drop=0.05, min_score=0.65)
def test_booking_extraction(case, result, score):
    score(
        scorers.valid_json(),
        scorers.json_schema(BOOKING_SCHEMA),
        # Three of the four fields must be right: the embedded 135M model reads the city and the date
        # reliably but often takes the wrong number for nights or guests (see docs/suites.md).
        scorers.field_match(case.expected, threshold=0.75),
    )
