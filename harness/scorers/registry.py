"""The `@scorer` decorator, the `Scorer` it builds, and the registry that finds scorers by name.

A scorer is written as a plain function of one result and some keyword arguments:

    @scorer(threshold=1.0)
    def mentions_city(result: LLMResult, *, city: str) -> bool:
        return city in result.text

`mentions_city(city="Paris")` then returns a `Scorer`: a callable that records its name, arguments and
threshold for provenance, and turns whatever the function returns (bool, float in 0..1, or a `Score`) into a
`Score`. A scorer never raises while scoring: an exception becomes an unscored `Score` carrying the error, so
one broken scorer cannot take down a run, and its cases stay out of pass-rate denominators.
Arguments are checked when the scorer is built, so a bad configuration fails loudly once rather than leaving
every case silently unscored.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from harness.errors import HarnessError
from harness.results import LLMResult, Score

ScoreFunction = Callable[..., "float | bool | Score"]
ArgsCheck = Callable[..., None]

_registry: dict[str, ScorerFactory] = {}


def outcome(value: float | bool | None, *, error: str | None = None, **details: Any) -> Score:
    """What a scorer function returns when it has details to add; the `Scorer` fills in the rest.

    `value=None` with an `error` means "could not score" (e.g. an unknown cost), which is not a pass.
    """
    number = None if value is None else float(value)
    return Score(
        name="", value=number, passed=None, threshold=math.nan, args={}, error=error, details=details
    )


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__


@dataclass(frozen=True, slots=True)
class Scorer:
    """A scoring function bound to its arguments; call it on an `LLMResult` to get a `Score`."""

    name: str
    args: dict[str, Any]
    threshold: float
    scores_failed_calls: bool
    function: ScoreFunction = field(repr=False, compare=False)
    call_args: dict[str, Any] = field(repr=False, compare=False)

    def named(self, name: str) -> Scorer:
        """The same scorer reported under another name (to tell two uses of one scorer apart)."""
        return Scorer(
            name, self.args, self.threshold, self.scores_failed_calls, self.function, self.call_args
        )

    def __call__(self, result: LLMResult) -> Score:
        """Score one result; never raises (errors become an unscored Score)."""
        if result.error is not None and not self.scores_failed_calls:
            return self._unscored(f"model call failed: {result.error}")
        try:
            raw = self.function(result, **self.call_args)
            return self._finish(raw)
        except Exception as exc:  # noqa: BLE001 (boundary: a scorer's bug must not end the run; it is recorded)
            return self._unscored(_error_text(exc))

    def _finish(self, raw: float | bool | Score) -> Score:
        if isinstance(raw, Score):
            value, error, details = raw.value, raw.error, raw.details
        elif isinstance(raw, bool):
            value, error, details = (1.0 if raw else 0.0), None, {}
        elif isinstance(raw, int | float):
            value, error, details = float(raw), None, {}
        else:
            raise TypeError(f"scorer returned {type(raw).__name__}; expected bool, float or Score")
        if value is None:
            return self._unscored(error or "scorer returned no value", details)
        if math.isnan(value) or not 0.0 <= value <= 1.0:
            raise ValueError(f"score {value!r} is outside 0..1")
        return Score(self.name, value, value >= self.threshold, self.threshold, self.args, error, details)

    def _unscored(self, reason: str, details: dict[str, Any] | None = None) -> Score:
        return Score(self.name, None, None, self.threshold, self.args, reason, details or {})


class ScorerFactory:
    """What `@scorer` turns a function into: call it with the scorer's arguments to get a `Scorer`."""

    def __init__(
        self,
        function: ScoreFunction,
        name: str,
        threshold: float,
        check: ArgsCheck | None,
        failed_calls: bool,
    ) -> None:
        self.function = function
        self.name = name
        self.threshold = threshold
        self.check = check
        self.scores_failed_calls = failed_calls
        parameters = list(inspect.signature(function).parameters.values())
        if not parameters:
            raise HarnessError(f"scorer {name!r} must take the result as its first parameter")
        # The factory takes the function's parameters minus the result.
        self.signature = inspect.Signature(parameters[1:])
        self.takes_threshold = "threshold" in self.signature.parameters
        functools.update_wrapper(self, function)

    def __repr__(self) -> str:
        return f"<scorer {self.name}{self.signature}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Scorer:
        """Build a scorer; `threshold=` overrides the default pass mark. Bad arguments raise HarnessError."""
        threshold = self.threshold if self.takes_threshold else kwargs.pop("threshold", self.threshold)
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise HarnessError(f"scorer {self.name}: {exc}") from exc
        bound.apply_defaults()
        call_args = dict(bound.arguments)
        if self.takes_threshold:
            threshold = call_args["threshold"]
        self._check(call_args, threshold)
        return Scorer(
            self.name, dict(call_args), float(threshold), self.scores_failed_calls, self.function, call_args
        )

    def _check(self, call_args: dict[str, Any], threshold: Any) -> None:
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
            raise HarnessError(f"scorer {self.name}: threshold must be a number in 0..1, got {threshold!r}")
        try:
            # Arguments are saved with every score for provenance, so they must survive a trip to JSON.
            orjson.dumps(call_args)
        except TypeError as exc:
            raise HarnessError(f"scorer {self.name}: arguments must be JSON-serialisable ({exc})") from exc
        if self.check is not None:
            try:
                self.check(**call_args)
            except (ValueError, TypeError) as exc:
                raise HarnessError(f"scorer {self.name}: {exc}") from exc


def scorer(
    name: str | ScoreFunction | None = None,
    threshold: float = 1.0,
    *,
    check: ArgsCheck | None = None,
    scores_failed_calls: bool = False,
) -> Any:
    """Register a scoring function under `name` (default: the function's name) and return its factory.

    `threshold` is the default pass mark (`value >= threshold`). `check(**args)` may raise ValueError or
    TypeError to reject arguments when the scorer is built. By default a failed model call is left unscored;
    `scores_failed_calls=True` scores it anyway (budgets: a slow failure still blew the latency budget).
    Usable bare (`@scorer`) or with arguments (`@scorer(threshold=0.5)`).
    """
    if callable(name):
        return scorer()(name)

    def register(function: ScoreFunction) -> ScorerFactory:
        factory = ScorerFactory(function, name or function.__name__, threshold, check, scores_failed_calls)
        _register(factory)
        return factory

    return register


def _register(factory: ScorerFactory) -> None:
    existing = _registry.get(factory.name)
    if existing is not None and _origin(existing.function) != _origin(factory.function):
        raise HarnessError(
            f"scorer name {factory.name!r} is already taken by {_origin(existing.function)}; "
            f"pass another name to @scorer for {_origin(factory.function)}"
        )
    # Same origin: a module re-imported (pytest does this to conftest files); the newer definition wins.
    _registry[factory.name] = factory


def _origin(function: Callable[..., Any]) -> str:
    return f"{function.__module__}.{function.__qualname__}"


def get_scorer(name: str) -> ScorerFactory:
    """The factory registered under `name`; HarnessError naming the known scorers if there is none."""
    try:
        return _registry[name]
    except KeyError:
        known = ", ".join(sorted(_registry)) or "none"
        raise HarnessError(f"unknown scorer {name!r}; registered scorers: {known}") from None


def registered_scorers() -> dict[str, ScorerFactory]:
    """Every registered scorer by name, sorted (a copy: changing it does not change the registry)."""
    return dict(sorted(_registry.items()))


def unregister_scorer(name: str) -> None:
    """Remove a scorer from the registry (for tests and plugins that replace a scorer)."""
    _registry.pop(name, None)


def scorer_from_config(spec: str | Mapping[str, Any]) -> Scorer:
    """Build a scorer from configuration (e.g. YAML).

    Accepts a bare name (`"valid_json"`) or a mapping `{"name": ..., "args": {...}, "threshold": ...}`
    where `args` and `threshold` are optional.
    """
    if isinstance(spec, str):
        return get_scorer(spec)()
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
        raise HarnessError(f"a scorer is configured as a name or a mapping with a 'name' key, got {spec!r}")
    unknown = set(spec) - {"name", "args", "threshold"}
    if unknown:
        raise HarnessError(f"scorer {spec['name']}: unknown key(s) {', '.join(sorted(unknown))}")
    args = spec.get("args") or {}
    if not isinstance(args, Mapping):
        raise HarnessError(f"scorer {spec['name']}: 'args' must be a mapping, got {args!r}")
    kwargs = dict(args)
    if "threshold" in spec:
        kwargs["threshold"] = spec["threshold"]
    return get_scorer(spec["name"])(**kwargs)
