"""Render a prompt file into chat messages, and describe what it needs and returns.

[SYSTEM] becomes the system message; [CONTEXT], [INSTRUCTION] and [FORMAT] are joined with a blank line
(sections that render empty are skipped) into one user message. `{{ output_schema }}` is always available
to the templates as pretty JSON when the header declares a schema.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from jinja2 import Template, TemplateError, UndefinedError, meta

from core.prompts.environment import prompt_environment
from core.prompts.errors import PromptError
from core.prompts.prompt_file import PromptFile

USER_SECTIONS: tuple[str, ...] = ("CONTEXT", "INSTRUCTION", "FORMAT")
_SCHEMA_NAME_RE = re.compile(r"[^A-Za-z0-9_-]")
_UNDEFINED_RE = re.compile(r"^'([^']+)' is undefined$")


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    """The messages and call settings produced by rendering one prompt version (and variant)."""

    messages: list[dict[str, str]]
    model: str | None
    parameters: dict[str, Any]
    output_schema: dict[str, Any] | None
    name: str
    version: str
    variant: str | None = None
    label: str | None = field(default=None, compare=False)

    def request_body(self, model: str | None = None) -> dict[str, Any]:
        """An OpenAI chat-completions body: model, messages, parameters and the response format if any."""
        body: dict[str, Any] = {"model": model or self.model, "messages": [dict(m) for m in self.messages]}
        body.update(self.parameters)
        schema_format = response_format(self)
        if schema_format is not None:
            body.setdefault("response_format", schema_format)
        return body


@functools.lru_cache(maxsize=1024)
def _compile(body: str) -> Template:
    # Bodies are checked when the file is loaded; compiled templates are cached by text because rendering
    # the same prompt for thousands of cases must not re-compile it each time.
    return prompt_environment().from_string(body)


def variables(prompt: PromptFile, variant: str | None = None) -> frozenset[str]:
    """The variables the sections use without defining them, minus those supplied automatically.

    `output_schema` (when the header has one) and the variant's own variables are supplied automatically.
    The set also holds optional variables, those the template guards with `default` or `is defined`.
    """
    required = _required(prompt.sections_for(variant))
    return frozenset(required - set(_automatic_variables(prompt, variant)))


def _automatic_variables(prompt: PromptFile, variant: str | None) -> dict[str, Any]:
    automatic: dict[str, Any] = {}
    if prompt.output_schema is not None:
        automatic["output_schema"] = json.dumps(prompt.output_schema, indent=2, ensure_ascii=False)
    if variant is not None:
        automatic.update(prompt.variant(variant).variables)
    return automatic


def render(
    prompt: PromptFile, variables: dict[str, Any] | None = None, variant: str | None = None
) -> RenderedPrompt:
    """Render `prompt` with `variables` (which win over the variant's and the automatic ones)."""
    given = dict(variables or {})
    context = {**_automatic_variables(prompt, variant), **given}
    sections = prompt.sections_for(variant)
    rendered = {name: _render_section(prompt, name, body, context, given) for name, body in sections.items()}
    messages: list[dict[str, str]] = []
    if rendered.get("SYSTEM", "").strip():
        messages.append({"role": "system", "content": rendered["SYSTEM"].strip()})
    user = [rendered[name].strip() for name in USER_SECTIONS if rendered.get(name, "").strip()]
    if user:
        messages.append({"role": "user", "content": "\n\n".join(user)})
    model, parameters = prompt.model, dict(prompt.parameters)
    if variant is not None:
        chosen = prompt.variant(variant)
        model = chosen.model or model
        parameters.update(chosen.parameters)
    return RenderedPrompt(
        messages=messages,
        model=model,
        parameters=parameters,
        output_schema=prompt.output_schema,
        name=prompt.name,
        version=prompt.version,
        variant=variant,
        label=prompt.label,
    )


def _required(sections: dict[str, str]) -> set[str]:
    names: set[str] = set()
    for body in sections.values():
        names |= _undeclared(body)
    return names


@functools.lru_cache(maxsize=1024)
def _undeclared(body: str) -> frozenset[str]:
    return frozenset(meta.find_undeclared_variables(prompt_environment().parse(body)))


def _render_section(
    prompt: PromptFile, section: str, body: str, context: dict[str, Any], given: dict[str, Any]
) -> str:
    try:
        return _compile(body).render(context)
    except UndefinedError as exc:
        missing = _UNDEFINED_RE.match(exc.message or "")
        if missing:
            problem = f"variable {missing.group(1)!r} is not defined"
        else:  # a defined value without the attribute or key asked for, e.g. {{ booking.city }}
            problem = f"section [{section}]: {exc.message}"
        raise PromptError(f"prompt {prompt.name}: {problem} (given: {_names(given)})") from exc
    except TemplateError as exc:
        raise PromptError(f"prompt {prompt.name}: section [{section}]: {exc.message}") from exc


def _names(given: dict[str, Any]) -> str:
    return ", ".join(sorted(given)) or "nothing"


def response_format(rendered: RenderedPrompt) -> dict[str, Any] | None:
    """The OpenAI `response_format` enforcing the prompt's output schema, or None when it has none."""
    if rendered.output_schema is None:
        return None
    # OpenAI accepts only [A-Za-z0-9_-]{1,64} as a schema name.
    name = _SCHEMA_NAME_RE.sub("_", rendered.name)[:64] or "output"
    return {
        "type": "json_schema",
        "json_schema": {"name": name, "schema": rendered.output_schema, "strict": True},
    }
