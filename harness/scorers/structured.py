"""Scorers for structured output: valid JSON, JSON Schema, expected fields, numbers within a tolerance.

JSON is read strictly by default: the whole output (surrounding whitespace aside) must be one JSON value.
Models often wrap JSON in a Markdown fence; `fenced=True` also accepts the first ```json (or bare ```) block
when the whole text is not JSON. Being strict by default keeps "the model followed the format" measurable.

An output that is not JSON, or lacks a field, scores 0.0 (the model failed); it is not an unscored error.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import jsonschema
import orjson

from harness.results import LLMResult, Score
from harness.scorers.registry import outcome, scorer
from harness.scorers.text import normalise_text

_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\r?\n(.*?)```", re.DOTALL)
_NUMBER = re.compile(
    r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+(?:[eE][-+]?\d+)?"
)
_MAX_SCHEMA_ERRORS = 5


def parse_json(text: str, *, fenced: bool = False) -> Any:
    """Parse an output as JSON (see the module docstring for `fenced`); ValueError says why it is not."""
    try:
        return _loads(text)
    except ValueError:
        match = _FENCE.search(text) if fenced else None
        if match is None:
            raise
        return _loads(match.group(1))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"not JSON: {name} is not a JSON value")


def _loads(text: str) -> Any:
    # The standard library, not orjson: orjson accepts NaN and turns integers past 64 bits into floats,
    # and the standard library's messages name the line and column. Model outputs are small.
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None


@scorer
def valid_json(result: LLMResult, fenced: bool = False) -> Score:
    """1.0 when the output is JSON (any JSON value), else 0.0 with the parse error in the details."""
    try:
        parse_json(result.text, fenced=fenced)
    except ValueError as exc:
        return outcome(0.0, reason=str(exc))
    return outcome(1.0)


def _check_schema(schema: Any, **_: Any) -> None:
    if not isinstance(schema, dict | bool):
        raise TypeError(f"schema must be a JSON Schema object, got {type(schema).__name__}")
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"invalid JSON Schema at {exc.json_path}: {exc.message}") from exc


@lru_cache(maxsize=256)
def _validator(schema_json: bytes) -> jsonschema.Draft202012Validator:
    # Keyed by the schema's canonical JSON: building a validator costs far more than serialising.
    return jsonschema.Draft202012Validator(orjson.loads(schema_json))


@scorer(check=_check_schema)
def json_schema(result: LLMResult, schema: dict[str, Any] | bool, fenced: bool = False) -> Score:
    """1.0 when the output is JSON valid against `schema` (Draft 2020-12; `format` is not asserted).

    On failure the details list the first errors, each with its JSON path and message.
    """
    try:
        data = parse_json(result.text, fenced=fenced)
    except ValueError as exc:
        return outcome(0.0, reason=str(exc))
    validator = _validator(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS))
    errors = sorted(validator.iter_errors(data), key=lambda e: (e.json_path, e.message))
    if not errors:
        return outcome(1.0)
    first = [{"path": e.json_path, "message": e.message} for e in errors[:_MAX_SCHEMA_ERRORS]]
    return outcome(0.0, errors=first, error_count=len(errors))


def _canonical(value: Any, normalise: bool) -> Any:
    """A form for comparison: strings normalised (when asked) at any depth; bools kept apart from numbers."""
    if isinstance(value, str):
        return normalise_text(value) if normalise else value
    if isinstance(value, bool):
        return ("bool", value)  # True == 1 in Python; a model answering 1 for true is a mismatch
    if isinstance(value, dict):
        return {k: _canonical(v, normalise) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v, normalise) for v in value]
    return value


def _check_fields(expected: Any, fields: Sequence[str] | None = None, **_: Any) -> None:
    if not isinstance(expected, dict) or not expected:
        raise TypeError(f"expected must be a non-empty mapping of field to value, got {expected!r}")
    if fields is not None:
        unknown = [f for f in fields if f not in expected]
        if not fields or unknown:
            raise ValueError(f"fields must name keys of expected; unknown: {unknown or 'empty list'}")


@scorer(check=_check_fields)
def field_match(
    result: LLMResult,
    expected: dict[str, Any],
    fields: Sequence[str] | None = None,
    normalise: bool = True,
    fenced: bool = False,
) -> Score:
    """The fraction of `fields` (default: every key of `expected`) whose value in the output's JSON object
    equals the expected one. Strings are compared after `normalise_text` unless `normalise=False`;
    numbers compare by value (1 == 1.0) but never equal booleans. Details report each field.
    """
    names = list(fields) if fields is not None else list(expected)
    try:
        data = parse_json(result.text, fenced=fenced)
    except ValueError as exc:
        return outcome(0.0, reason=str(exc))
    if not isinstance(data, dict):
        return outcome(0.0, reason=f"output JSON is a {type(data).__name__}, not an object")
    report: dict[str, dict[str, Any]] = {}
    for name in names:
        if name not in data:
            report[name] = {"match": False, "missing": True, "expected": expected[name]}
            continue
        same = _canonical(data[name], normalise) == _canonical(expected[name], normalise)
        report[name] = {"match": same, "expected": expected[name], "actual": data[name]}
    matched = sum(1 for entry in report.values() if entry["match"])
    return outcome(matched / len(names), fields=report)


def _check_tolerance(
    expected: Any, abs_tol: Any = None, rel_tol: Any = None, field: Any = None, which: str = "first", **_: Any
) -> None:
    if isinstance(expected, bool) or not isinstance(expected, int | float) or not math.isfinite(expected):
        raise TypeError(f"expected must be a finite number, got {expected!r}")
    for label, tol in (("abs_tol", abs_tol), ("rel_tol", rel_tol)):
        if tol is not None and (isinstance(tol, bool) or not isinstance(tol, int | float) or tol < 0):
            raise ValueError(f"{label} must be a non-negative number, got {tol!r}")
    if field is not None and not isinstance(field, str):
        raise TypeError(f"field must be a string, got {field!r}")
    if which not in ("first", "last"):
        raise ValueError(f"which must be 'first' or 'last', got {which!r}")


def _number_from_text(text: str, which: str) -> float | None:
    found = _NUMBER.findall(text)
    if not found:
        return None
    return float((found[0] if which == "first" else found[-1]).replace(",", ""))


def _number_from_field(text: str, field: str, fenced: bool) -> float | str:
    """The number in a field of the output's JSON object, or a reason why there is none."""
    try:
        data = parse_json(text, fenced=fenced)
    except ValueError as exc:
        return str(exc)
    if not isinstance(data, dict) or field not in data:
        return f"output JSON has no field {field!r}"
    value = data[field]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return float(value.strip().replace(",", ""))
    return f"field {field!r} is not a number: {value!r}"


@scorer(check=_check_tolerance)
def numeric_tolerance(
    result: LLMResult,
    expected: float,
    abs_tol: float | None = None,
    rel_tol: float | None = None,
    field: str | None = None,
    which: str = "first",
    fenced: bool = False,
) -> Score:
    """1.0 when the output's number is within tolerance of `expected` (`math.isclose` semantics: within
    `abs_tol` OR within `rel_tol`, plus a relative slack of 1e-9 for float rounding, so with neither given
    it means equal up to rounding).

    The number is read from JSON field `field` when given, else the `which` ('first' or 'last') number in
    the text; thousands separators are accepted ("1,234.5").
    """
    if field is not None:
        actual = _number_from_field(result.text, field, fenced)
        if isinstance(actual, str):
            return outcome(0.0, reason=actual)
    else:
        number = _number_from_text(result.text, which)
        if number is None:
            return outcome(0.0, reason="no number in the output")
        actual = number
    scale = max(abs(actual), abs(expected))
    difference = abs(actual - expected)
    # A relative slack of 1e-9 on top, so float rounding cannot flip a boundary (20 - 19.99 > 0.01 in floats).
    allowed = max(abs_tol or 0.0, (rel_tol or 0.0) * scale) + 1e-9 * scale
    return outcome(1.0 if difference <= allowed else 0.0, actual=actual, difference=difference)
