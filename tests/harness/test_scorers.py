"""The scorer registry and every built-in scorer, edge cases included."""

from __future__ import annotations

import re
from collections.abc import Iterator

import orjson
import pytest

from harness.errors import HarnessError
from harness.results import LLMResult, Score
from harness.scorers import (
    contains,
    cost_budget,
    exact_match,
    field_match,
    get_scorer,
    json_schema,
    latency_budget,
    normalise_text,
    normalised_match,
    numeric_tolerance,
    outcome,
    parse_json,
    regex,
    registered_scorers,
    scorer,
    scorer_from_config,
    semantic_similarity,
    token_budget,
    unregister_scorer,
    valid_json,
)

BUILT_INS = {
    "contains",
    "cost_budget",
    "exact_match",
    "field_match",
    "json_schema",
    "latency_budget",
    "normalised_match",
    "numeric_tolerance",
    "regex",
    "semantic_similarity",
    "token_budget",
    "valid_json",
}


def result(text: str = "", **overrides: object) -> LLMResult:
    fields: dict[str, object] = {
        "text": text,
        "model": "smollm2",
        "latency_ms": 100.0,
        "ttft_ms": 20.0,
        "tokens_in": 50,
        "tokens_out": 10,
        "cost_usd": 0.001,
    }
    fields.update(overrides)
    return LLMResult(**fields)  # type: ignore[arg-type]


FAILED = result("", error="upstream returned 503")


@pytest.fixture
def custom_names() -> Iterator[list[str]]:
    """Names of scorers registered by a test, removed afterwards so tests stay independent."""
    names: list[str] = []
    yield names
    for name in names:
        unregister_scorer(name)


# --- registry -----------------------------------------------------------------------------------------


def test_built_ins_are_registered_by_name() -> None:
    assert BUILT_INS <= set(registered_scorers())
    assert get_scorer("exact_match") is exact_match


def test_unknown_scorer_names_the_known_ones() -> None:
    with pytest.raises(HarnessError, match="unknown scorer 'nope'.*exact_match"):
        get_scorer("nope")


def test_registered_scorers_is_a_copy() -> None:
    registered_scorers().clear()
    assert "valid_json" in registered_scorers()


def test_custom_scorer_registers_and_builds_with_provenance(custom_names: list[str]) -> None:
    @scorer(name="mentions_city", threshold=0.5)
    def mentions(result: LLMResult, *, city: str) -> bool:
        return city in result.text

    custom_names.append("mentions_city")
    built = get_scorer("mentions_city")(city="Paris")
    score = built(result("I love Paris"))
    assert score == Score("mentions_city", 1.0, True, 0.5, {"city": "Paris"})
    assert mentions(city="Rome")(result("I love Paris")).value == 0.0


def test_bare_decorator_uses_function_name(custom_names: list[str]) -> None:
    @scorer
    def always_half(result: LLMResult) -> float:
        return 0.5

    custom_names.append("always_half")
    score = get_scorer("always_half")()(result("x"))
    assert (score.name, score.value, score.passed, score.threshold) == ("always_half", 0.5, False, 1.0)


def test_threshold_can_be_overridden_per_scorer(custom_names: list[str]) -> None:
    @scorer(name="t_half")
    def half(result: LLMResult) -> float:
        return 0.5

    custom_names.append("t_half")
    assert half(threshold=0.5)(result()).passed is True
    assert half()(result()).passed is False


def test_exception_in_scorer_becomes_unscored(custom_names: list[str]) -> None:
    @scorer(name="t_broken")
    def broken(result: LLMResult) -> float:
        raise KeyError("boom")

    custom_names.append("t_broken")
    score = broken()(result("x"))
    assert (score.value, score.passed, score.error) == (None, None, "KeyError: 'boom'")


@pytest.mark.parametrize(
    ("returned", "message"),
    [(1.5, "outside 0..1"), (float("nan"), "outside 0..1"), ("yes", "returned str")],
)
def test_bad_return_values_become_unscored(custom_names: list[str], returned: object, message: str) -> None:
    @scorer(name="t_bad_return")
    def bad(result: LLMResult) -> object:
        return returned

    custom_names.append("t_bad_return")
    score = bad()(result())
    assert score.value is None and score.error is not None and message in score.error


def test_failed_call_is_unscored_for_quality_scorers() -> None:
    score = exact_match("x")(FAILED)
    assert score.value is None and score.passed is None
    assert score.error == "model call failed: upstream returned 503"


def test_failed_call_still_scores_budgets() -> None:
    assert latency_budget(total_ms=50)(FAILED).passed is False
    assert latency_budget(total_ms=500)(FAILED).passed is True


def test_bad_arguments_fail_when_built() -> None:
    with pytest.raises(HarnessError, match="exact_match: missing a required argument: 'expected'"):
        exact_match()
    with pytest.raises(HarnessError, match="unexpected keyword argument 'bogus'"):
        valid_json(bogus=1)
    with pytest.raises(HarnessError, match="threshold must be a number in 0..1"):
        valid_json(threshold=2)
    with pytest.raises(HarnessError, match="JSON-serialisable"):
        exact_match({"a", "b"})


def test_name_clash_between_different_functions_is_refused() -> None:
    with pytest.raises(
        HarnessError, match="'exact_match' is already taken by harness.scorers.text.exact_match"
    ):

        @scorer(name="exact_match")
        def impostor(result: LLMResult) -> bool:
            return True

    assert get_scorer("exact_match") is exact_match


def test_named_copy_reports_another_name() -> None:
    score = contains("a").named("has_a")(result("a"))
    assert score.name == "has_a" and score.value == 1.0


def test_scorer_from_config_accepts_a_name_or_a_mapping() -> None:
    assert scorer_from_config("valid_json")(result("[1]")).passed is True
    built = scorer_from_config({"name": "contains", "args": {"substring": ["a", "b"]}, "threshold": 0.5})
    assert (built.threshold, built.args["substring"]) == (0.5, ["a", "b"])
    assert built(result("a")).passed is True


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"args": {}}, "a name or a mapping"),
        ({"name": "contains", "arg": {}}, "unknown key\\(s\\) arg"),
        ({"name": "contains", "args": ["a"]}, "'args' must be a mapping"),
        ({"name": "contains"}, "missing a required argument"),
        ("missing_scorer", "unknown scorer"),
    ],
)
def test_scorer_from_config_rejects_bad_specs(spec: object, message: str) -> None:
    with pytest.raises(HarnessError, match=message):
        scorer_from_config(spec)  # type: ignore[arg-type]


def test_score_of_a_scorer_round_trips_through_json() -> None:
    score = field_match({"a": 1, "b": "x"})(result('{"a": 1, "b": "y"}'))
    assert Score.from_dict(orjson.loads(orjson.dumps(score.to_dict()))) == score


def test_outcome_without_value_is_unscored_with_its_reason(custom_names: list[str]) -> None:
    @scorer(name="t_unknown")
    def unknown(result: LLMResult) -> Score:
        return outcome(None, error="needs a judge", hint=1)

    custom_names.append("t_unknown")
    score = unknown()(result())
    assert (score.value, score.error, score.details) == (None, "needs a judge", {"hint": 1})


# --- text -------------------------------------------------------------------------------------------------


def test_exact_match_is_strict_unless_normalised() -> None:
    assert exact_match("Paris")(result("Paris")).value == 1.0
    miss = exact_match("Paris")(result("Paris\n"))
    assert miss.value == 0.0 and miss.details == {"first_difference": 5}
    assert exact_match("Paris", normalise=True)(result(" paris. ")).value == 1.0


def test_exact_match_accepts_alternatives() -> None:
    assert exact_match(["Paris", "Paris, France"])(result("Paris, France")).passed is True
    assert exact_match(["Paris", "Lyon"])(result("Rome")).passed is False


def test_exact_match_rejects_non_string_expected() -> None:
    with pytest.raises(HarnessError, match="expected must be a string"):
        exact_match(42)
    with pytest.raises(HarnessError, match="expected must be a string"):
        exact_match([])


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("  Hello,  WORLD! ", "hello world"),
        ("New-York", "new york"),
        ("Ｐａｒｉｓ", "paris"),  # fullwidth folds under NFKC
        ("STRASSE", "strasse"),
        ("Straße", "strasse"),  # casefold, not lower
        ("ﬁne", "fine"),  # ligature
        ("«Quoted»\ttext\n", "quoted text"),
        ("", ""),
        ("$5 + 3", "$5 + 3"),  # symbols are not punctuation
    ],
)
def test_normalise_text(text: str, normal: str) -> None:
    assert normalise_text(text) == normal


def test_normalised_match() -> None:
    assert normalised_match("The Eiffel Tower")(result("the eiffel tower!")).value == 1.0
    assert normalised_match("The Eiffel Tower")(result("the eiffel towers")).value == 0.0


def test_contains_all_gives_partial_credit_and_lists_missing() -> None:
    score = contains(["Paris", "France", "Seine"])(result("paris is in FRANCE"))
    assert score.value == pytest.approx(2 / 3) and score.passed is False
    assert score.details == {"found": ["Paris", "France"], "missing": ["Seine"]}


def test_contains_any_and_case_sensitivity() -> None:
    assert contains(["Rome", "Paris"], all=False)(result("paris")).value == 1.0
    assert contains("Paris", case_sensitive=True)(result("paris")).value == 0.0
    assert contains("Paris", case_sensitive=True)(result("Paris")).value == 1.0


def test_contains_rejects_empty_needles() -> None:
    with pytest.raises(HarnessError, match="non-empty"):
        contains("")
    with pytest.raises(HarnessError, match="non-empty"):
        contains([])


def test_regex_searches_and_reports_the_match() -> None:
    score = regex(r"\d{4}-\d{2}-\d{2}")(result("Check-in on 2025-06-01, thanks"))
    assert score.value == 1.0 and score.details == {"match": "2025-06-01", "span": [12, 22]}
    assert regex(r"^\d+$")(result("12 apples")).value == 0.0


def test_regex_flags_as_int_or_names() -> None:
    assert regex("paris", flags=re.IGNORECASE)(result("PARIS")).value == 1.0
    assert regex("^b", flags="I|MULTILINE")(result("a\nB")).value == 1.0
    assert regex("paris")(result("PARIS")).value == 0.0


def test_regex_rejects_bad_patterns_and_flags_when_built() -> None:
    with pytest.raises(HarnessError, match="invalid pattern"):
        regex("(unclosed")
    with pytest.raises(HarnessError, match="unknown regex flag 'NOPE'"):
        regex("a", flags="NOPE")


# --- structured ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [('{"a": 1}', 1.0), ("  [1, 2]\n", 1.0), ("42", 1.0), ('{"a": 1', 0.0), ("", 0.0), ("NaN", 0.0)],
)
def test_valid_json_is_strict(text: str, value: float) -> None:
    assert valid_json()(result(text)).value == value


def test_valid_json_fenced_is_opt_in() -> None:
    text = 'Here you go:\n```json\n{"a": 1}\n```\n'
    assert valid_json()(result(text)).value == 0.0
    assert valid_json(fenced=True)(result(text)).value == 1.0
    assert valid_json(fenced=True)(result("```\n[1]\n```")).value == 1.0
    assert valid_json(fenced=True)(result("```json\n{oops}\n```")).value == 0.0


def test_parse_json_handles_big_integers_and_explains_failures() -> None:
    assert parse_json("123456789012345678901234567890") == 123456789012345678901234567890
    with pytest.raises(ValueError, match="line 2 column 1"):
        parse_json('{"a":\n}')


PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


def test_json_schema_passes_valid_documents() -> None:
    assert json_schema(PERSON)(result('{"name": "Ada", "age": 36}')).passed is True


def test_json_schema_lists_errors_with_paths() -> None:
    score = json_schema(PERSON)(result('{"name": 5, "age": -1, "extra": true}'))
    assert score.value == 0.0
    assert score.details["error_count"] == 3
    paths = [e["path"] for e in score.details["errors"]]
    assert paths == ["$", "$.age", "$.name"]
    assert "-1 is less than the minimum of 0" in score.details["errors"][1]["message"]


def test_json_schema_uses_draft_2020_12() -> None:
    # prefixItems exists only from Draft 2020-12 on.
    schema = {"type": "array", "prefixItems": [{"type": "string"}], "items": False}
    assert json_schema(schema)(result('["a"]')).value == 1.0
    assert json_schema(schema)(result('["a", 2]')).value == 0.0


def test_json_schema_non_json_output_fails_and_bad_schema_is_refused() -> None:
    assert json_schema(PERSON)(result("Ada, 36")).details["reason"].startswith("not JSON")
    with pytest.raises(HarnessError, match="invalid JSON Schema"):
        json_schema({"type": "nonsense"})


def test_field_match_reports_each_field() -> None:
    expected = {"city": "Paris", "nights": 3, "breakfast": True}
    score = field_match(expected)(result('{"city": " paris ", "nights": 3.0, "breakfast": 1}'))
    assert score.value == pytest.approx(2 / 3)
    fields = score.details["fields"]
    assert fields["city"] == {"match": True, "expected": "Paris", "actual": " paris "}
    assert fields["nights"]["match"] is True
    assert fields["breakfast"] == {"match": False, "expected": True, "actual": 1}


def test_field_match_subset_missing_fields_and_strict_strings() -> None:
    expected = {"city": "Paris", "nights": 3}
    assert field_match(expected, fields=["city"])(result('{"city": "Paris"}')).value == 1.0
    score = field_match(expected)(result('{"city": "Paris"}'))
    assert score.value == 0.5 and score.details["fields"]["nights"]["missing"] is True
    assert field_match(expected, fields=["city"], normalise=False)(result('{"city": "paris"}')).value == 0.0


def test_field_match_normalises_nested_strings() -> None:
    expected = {"guests": [{"name": "Ada Lovelace"}]}
    assert field_match(expected)(result('{"guests": [{"name": "ada lovelace."}]}')).value == 1.0


def test_field_match_non_object_output_and_bad_arguments() -> None:
    assert field_match({"a": 1})(result("[1]")).details["reason"] == "output JSON is a list, not an object"
    with pytest.raises(HarnessError, match="unknown: \\['b'\\]"):
        field_match({"a": 1}, fields=["b"])
    with pytest.raises(HarnessError, match="non-empty mapping"):
        field_match({})


@pytest.mark.parametrize(
    ("text", "kwargs", "value"),
    [
        ("The total is 1,234.50 EUR", {"expected": 1234.5}, 1.0),
        ("about 99", {"expected": 100, "abs_tol": 1}, 1.0),
        ("about 98", {"expected": 100, "abs_tol": 1}, 0.0),
        ("98", {"expected": 100, "rel_tol": 0.05}, 1.0),
        ("-3.5e2", {"expected": -350}, 1.0),
        ("step 1 gives 7, so the answer is 42", {"expected": 42, "which": "last"}, 1.0),
        ("step 1 gives 7, so the answer is 42", {"expected": 42}, 0.0),
        ("0.30000000000000004", {"expected": 0.3}, 1.0),
        ("no digits here", {"expected": 1}, 0.0),
    ],
)
def test_numeric_tolerance_from_text(text: str, kwargs: dict[str, object], value: float) -> None:
    assert numeric_tolerance(**kwargs)(result(text)).value == value


def test_numeric_tolerance_from_json_field() -> None:
    scorer_ = numeric_tolerance(19.99, abs_tol=0.01, field="price")
    assert scorer_(result('{"price": 20}')).value == 1.0
    assert scorer_(result('{"price": "19.99"}')).value == 1.0
    assert scorer_(result('{"price": true}')).details["reason"] == "field 'price' is not a number: True"
    assert scorer_(result('{"cost": 20}')).details["reason"] == "output JSON has no field 'price'"
    details = scorer_(result('{"price": 25}')).details
    assert details["actual"] == 25.0 and details["difference"] == pytest.approx(5.01)


def test_numeric_tolerance_rejects_bad_arguments() -> None:
    with pytest.raises(HarnessError, match="finite number"):
        numeric_tolerance("12")
    with pytest.raises(HarnessError, match="abs_tol must be a non-negative"):
        numeric_tolerance(1, abs_tol=-1)
    with pytest.raises(HarnessError, match="which must be"):
        numeric_tolerance(1, which="middle")


# --- semantic ------------------------------------------------------------------------------------------


def test_semantic_similarity_separates_paraphrase_from_unrelated() -> None:
    similar = semantic_similarity("A man is eating food.")
    assert similar(result("A man is eating a piece of bread.")).value == pytest.approx(0.7553, abs=1e-3)
    assert similar(result("A man is eating a piece of bread.")).passed is False  # default threshold 0.8
    assert similar(result("The stock market fell sharply today.")).value < 0.2
    assert similar(result("A man is eating food.")).value == pytest.approx(1.0, abs=1e-5)


def test_semantic_similarity_best_of_references_and_threshold() -> None:
    score = semantic_similarity(["The weather is cold.", "Paris is the capital of France."], threshold=0.6)(
        result("The capital of France is Paris.")
    )
    assert score.details["best_reference"] == 1 and score.passed is True


# --- budgets -------------------------------------------------------------------------------------------


def test_latency_budget() -> None:
    assert latency_budget(total_ms=100)(result()).passed is True
    score = latency_budget(total_ms=99, ttft_ms=50)(result())
    assert score.value == 0.0 and score.details["over"] == ["total_ms"]
    assert score.details["ttft_ms"] == {"measured": 20.0, "limit": 50}


def test_latency_budget_unknown_ttft_is_unscored_but_a_blown_total_still_fails() -> None:
    unstreamed = result(ttft_ms=None)
    score = latency_budget(ttft_ms=50)(unstreamed)
    assert score.value is None and "not streamed" in (score.error or "")
    assert latency_budget(total_ms=10, ttft_ms=50)(unstreamed).value == 0.0


def test_cost_budget_unknown_cost_is_not_a_pass() -> None:
    assert cost_budget(0.01)(result()).passed is True
    assert cost_budget(0.0005)(result()).passed is False
    unknown = cost_budget(0.01)(result(cost_usd=None))
    assert unknown.passed is None and unknown.error == "cost unknown: no price known for model 'smollm2'"


def test_token_budget() -> None:
    assert token_budget(max_out=10, max_in=50)(result()).passed is True
    assert token_budget(max_out=9)(result()).details["over"] == ["tokens_out"]
    assert token_budget(max_in=10)(result(tokens_in=None)).error == "prompt token count unknown"


@pytest.mark.parametrize(
    "build",
    [
        lambda: latency_budget(),
        lambda: token_budget(),
        lambda: cost_budget(-1),
        lambda: latency_budget(total_ms=True),
    ],
)
def test_budgets_reject_missing_or_negative_limits(build: object) -> None:
    with pytest.raises(HarnessError):
        build()  # type: ignore[operator]
