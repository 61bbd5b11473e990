"""Stash keys shared by the plugin's modules (kept import-light: the plugin loads in every pytest run)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from harness.cases import CaseState

CASE_STATE: pytest.StashKey[CaseState] = pytest.StashKey()
PLUGIN: pytest.StashKey[Any] = pytest.StashKey()  # the session's TollgatePlugin

MARKERS = (
    "dataset(path, tags=None, exclude_tags=None): parametrise the test with the dataset's cases (fixture `case`)",
    (
        "prompt(name, variant=None, variables=None, model=None, **parameters): the prompt each case is rendered "
        "with; `variables` is a mapping or a function of the case; the `result` fixture holds the model's answer"
    ),
    (
        "tollgate_suite(name=None, max_drop=None, alpha=None, min_score=None, strict=False, repeat=None): the "
        "suite a test's cases belong to and its gate settings"
    ),
)
