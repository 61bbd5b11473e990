"""The sandboxed Jinja environment every prompt is parsed and rendered with.

Prompt files are reviewed like code but rendered with data from datasets and production traffic, so templates
run in Jinja's immutable sandbox (no attribute tricks, no mutation of the values passed in) and an undefined
variable is an error rather than an empty string that silently changes the prompt.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment


def _to_json(value: Any, indent: int | None = None) -> str:
    # Jinja's own `tojson` escapes <, >, & and ' for HTML; a prompt wants the JSON as written.
    return json.dumps(value, indent=indent, ensure_ascii=False)


@functools.cache
def prompt_environment() -> ImmutableSandboxedEnvironment:
    """The shared environment: sandboxed, strict about undefined variables, no autoescape."""
    env = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
    )
    env.filters["tojson"] = _to_json
    return env
