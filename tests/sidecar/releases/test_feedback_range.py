"""`POST /v1/feedback` accepts only values in the outcome's declared range."""

from __future__ import annotations

import httpx
import pytest

from core.settings import Settings


def post(proxy, outcome: str, value) -> httpx.Response:
    return httpx.post(proxy.url + "/feedback", json={"request_id": "req-1", "outcome": outcome, "value": value})


def test_feedback_values_outside_the_declared_range_are_a_400_naming_value(release_sidecar):
    proxy, _ = release_sidecar(feedback_outcomes={"revenue": {"min": 0, "max": 10000}})
    for outcome, value in (("converted", 1000000), ("converted", -2), ("thumbs_up", 1.5), ("revenue", -1),
                           ("revenue", 10000.5)):
        refused = post(proxy, outcome, value)
        assert refused.status_code == 400, (outcome, value, refused.text)
        error = refused.json()["error"]
        assert error["param"] == "value" and error["type"] == "invalid_request_error"
        assert "must be within" in error["message"]
    for outcome, value in (("converted", 1), ("thumbs_up", -1), ("converted", 0.5), ("revenue", 2500)):
        assert post(proxy, outcome, value).status_code == 201, (outcome, value)


def test_a_feedback_range_must_be_ordered():
    with pytest.raises(ValueError, match="min <= max"):
        Settings(releases={"feedback_range": {"min": 1, "max": 0}})
