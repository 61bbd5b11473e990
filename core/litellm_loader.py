"""Importing litellm: lazily, offline, and without letting its import-time warnings escape.

litellm takes seconds to import and warns about its own typing on import (pydantic `ReadOnly` notices). Those
warnings are not ours to act on; under a warnings-as-errors policy they would break the first call that
needs litellm, so they are silenced for the import only.
"""

from __future__ import annotations

import importlib
import threading
import warnings
from types import ModuleType

from core.offline import apply_offline_env

_lock = threading.Lock()


def load_litellm() -> ModuleType:
    """The litellm module, imported once with the offline settings applied."""
    with _lock:
        apply_offline_env()  # the bundled price map, never a download
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module("litellm")
