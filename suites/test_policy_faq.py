"""Policy FAQ: answers about baggage, cancellation, check-in, pets and refunds, grounded in the policy text."""

import pytest

from harness import scorers


@pytest.mark.dataset("datasets/policy_faq.jsonl")
@pytest.mark.prompt("policy_faq")
@pytest.mark.tollgate_suite("policy_faq", max_drop=0.05, min_score=0.4)
def test_policy_faq(case, result, score):
    score(
        # The key fact (a number, a time, an amount) must appear as the policy states it.
        scorers.regex(case.expected["fact"], flags="IGNORECASE"),
        # And it must be about the question: refusals and off-topic answers score 0.0-0.4 against the
        # reference answer, on-topic ones 0.5 and up.
        scorers.semantic_similarity(case.expected["answer"], threshold=0.4),
    )
