"""One prompt file: a YAML header between `---` lines, then the body in explicit sections.

```
---
name: booking_extract
model: smollm2-135m
parameters: {temperature: 0, max_tokens: 200}
output_schema: {type: object, ...}
variants:
  fr: {sections: {SYSTEM: "..."}, variables: {language: French}}
---
[SYSTEM]
You extract bookings.
[INSTRUCTION]
{{ booking_text }}
```

A section marker is a line holding only `[NAME]`; the known names are SYSTEM, CONTEXT, INSTRUCTION and FORMAT.
Every problem is reported as one line naming the file and, where there is one, the line.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from jinja2 import TemplateSyntaxError

from core.prompts.environment import prompt_environment
from core.prompts.errors import PromptError

SECTION_NAMES: tuple[str, ...] = ("SYSTEM", "CONTEXT", "INSTRUCTION", "FORMAT")
HEADER_KEYS: tuple[str, ...] = (
    "name",
    "label",
    "description",
    "model",
    "parameters",
    "output_schema",
    "tags",
    "variants",
)
VARIANT_KEYS: tuple[str, ...] = ("sections", "variables", "model", "parameters")

_SECTION_RE = re.compile(r"^\[([A-Za-z][A-Za-z0-9_ -]*)\]\s*$")
_FENCE = "---"


@dataclass(frozen=True, slots=True)
class Variant:
    """Overrides applied on top of the base prompt, e.g. a locale (`fr`) or a user type (`business`)."""

    name: str
    sections: dict[str, str]
    variables: dict[str, Any]
    model: str | None
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PromptFile:
    """A parsed, validated prompt file. `version` is the first 12 hex chars of the sha256 of its bytes."""

    name: str
    path: Path
    version: str
    label: str | None
    description: str
    model: str | None
    parameters: dict[str, Any]
    output_schema: dict[str, Any] | None
    tags: tuple[str, ...]
    variants: dict[str, Variant]
    sections: dict[str, str]
    section_lines: dict[str, int]
    source: str

    def variant(self, name: str) -> Variant:
        """The named variant, or a PromptError listing the variants that exist."""
        try:
            return self.variants[name]
        except KeyError:
            known = ", ".join(sorted(self.variants)) or "none"
            raise PromptError(f"prompt {self.name}: unknown variant {name!r} (variants: {known})") from None

    def sections_for(self, variant: str | None = None) -> dict[str, str]:
        """The sections in canonical order with the variant's overrides applied."""
        merged = dict(self.sections)
        if variant is not None:
            merged.update(self.variant(variant).sections)
        return {name: merged[name] for name in SECTION_NAMES if name in merged}

    def header(self) -> dict[str, Any]:
        """The header fields as plain data (for display and export)."""
        return {
            "name": self.name,
            "version": self.version,
            "label": self.label,
            "description": self.description,
            "model": self.model,
            "parameters": dict(self.parameters),
            "tags": list(self.tags),
            "variants": sorted(self.variants),
            "output_schema": self.output_schema,
        }


def content_version(data: bytes) -> str:
    """The version of a prompt: the first 12 hex chars of the sha256 of the file bytes."""
    return hashlib.sha256(data).hexdigest()[:12]


def load_prompt(path: str | Path) -> PromptFile:
    """Read and validate one `.prompt` file; every problem is a PromptError naming file and line."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PromptError(f"{path}: no such prompt file") from None
    except OSError as exc:
        raise PromptError(f"{path}: cannot read prompt file ({exc.strerror})") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PromptError(f"{path}: not valid UTF-8 (byte {exc.start})") from exc
    return parse_prompt(text, path, content_version(data))


def parse_prompt(text: str, path: Path, version: str) -> PromptFile:
    """Parse prompt text that was read from `path` (the path is used for names and messages only)."""
    lines = text.splitlines()
    end = _front_matter_end(lines, path)
    header = _load_header(lines[1:end], path)
    sections, section_lines = _parse_sections(lines, end + 1, path)
    header_line = _KeyLines(lines[1:end], first_line=2)
    fields = _header_fields(header, path, header_line)
    for name, body in sections.items():
        _check_template(body, path, section_lines[name], f"section [{name}]")
    return PromptFile(
        path=path, version=version, sections=sections, section_lines=section_lines, source=text, **fields
    )


def _front_matter_end(lines: list[str], path: Path) -> int:
    if not lines or lines[0].strip() != _FENCE:
        raise PromptError(f"{path}:1: a prompt file starts with a YAML header between '---' lines")
    for index in range(1, len(lines)):
        if lines[index].strip() == _FENCE:
            return index
    raise PromptError(f"{path}:1: the YAML header opened here is never closed with '---'")


def _load_header(lines: list[str], path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load("\n".join(lines))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 2}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PromptError(f"{where}: invalid YAML header ({problem})") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PromptError(f"{path}:2: the YAML header must be a mapping, got {type(data).__name__}")
    return data


def _parse_sections(lines: list[str], start: int, path: Path) -> tuple[dict[str, str], dict[str, int]]:
    bodies: dict[str, list[str]] = {}
    first_line: dict[str, int] = {}
    current: str | None = None
    for index in range(start, len(lines)):
        line, lineno = lines[index], index + 1
        match = _SECTION_RE.match(line)
        if match:
            current = match.group(1)
            if current not in SECTION_NAMES:
                raise PromptError(
                    f"{path}:{lineno}: unknown section [{current}] (expected {_known_sections()})"
                )
            if current in bodies:
                raise PromptError(
                    f"{path}:{lineno}: section [{current}] appears twice (first at line {first_line[current]})"
                )
            bodies[current], first_line[current] = [], lineno + 1
        elif current is not None:
            bodies[current].append(line)
        elif line.strip():
            raise PromptError(
                f"{path}:{lineno}: text before the first section (expected {_known_sections()})"
            )
    sections: dict[str, str] = {}
    for name, body in bodies.items():
        # Drop blank lines around a section but keep the indentation of its first line.
        while body and not body[0].strip():
            body.pop(0)
            first_line[name] += 1
        sections[name] = "\n".join(body).rstrip()
    if not any(body.strip() for body in sections.values()):
        raise PromptError(f"{path}: the prompt has no non-empty section (expected {_known_sections()})")
    return sections, first_line


def _known_sections() -> str:
    return ", ".join(f"[{name}]" for name in SECTION_NAMES)


def _check_template(body: str, path: Path, first_line: int, what: str) -> None:
    try:
        prompt_environment().parse(body)
    except TemplateSyntaxError as exc:
        lineno = first_line + (exc.lineno or 1) - 1
        raise PromptError(f"{path}:{lineno}: template error in {what}: {exc.message}") from exc


class _KeyLines:
    """Finds the file line of a top-level header key, so a bad field is reported where it is written."""

    def __init__(self, lines: list[str], first_line: int) -> None:
        self._lines = lines
        self._first = first_line

    def __call__(self, key: str) -> int:
        pattern = re.compile(rf"^{re.escape(key)}\s*:")
        for offset, line in enumerate(self._lines):
            if pattern.match(line):
                return self._first + offset
        return self._first


def _header_fields(header: dict[str, Any], path: Path, line: _KeyLines) -> dict[str, Any]:
    for key in header:
        if key not in HEADER_KEYS:
            hint = difflib.get_close_matches(str(key), HEADER_KEYS, n=1)
            suggestion = f"; did you mean {hint[0]!r}?" if hint else f" (known: {', '.join(HEADER_KEYS)})"
            raise PromptError(f"{path}:{line(str(key))}: unknown header field {key!r}{suggestion}")
    name = _optional_str(header, "name", path, line) or path.stem
    if name != path.stem:
        raise PromptError(f"{path}:{line('name')}: header name {name!r} does not match the file name")
    schema = header.get("output_schema")
    if schema is not None:
        _check_schema(schema, path, line("output_schema"))
    return {
        "name": name,
        "label": _optional_str(header, "label", path, line),
        "description": _optional_str(header, "description", path, line) or "",
        "model": _optional_str(header, "model", path, line),
        "parameters": _mapping(header.get("parameters"), f"{path}:{line('parameters')}: parameters"),
        "output_schema": schema,
        "tags": _tags(header.get("tags"), path, line("tags")),
        "variants": _variants(header.get("variants"), path, line("variants")),
    }


def _optional_str(header: dict[str, Any], key: str, path: Path, line: _KeyLines) -> str | None:
    value = header.get(key)
    if value is None or isinstance(value, str):
        return value
    raise PromptError(f"{path}:{line(key)}: {key} must be a string, got {type(value).__name__}")


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise PromptError(f"{where} must be a mapping with string keys")
    return dict(value)


def _tags(value: Any, path: Path, lineno: int) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
        raise PromptError(f"{path}:{lineno}: tags must be a list of strings")
    return tuple(tag.strip() for tag in value if tag.strip())


def _check_schema(schema: Any, path: Path, lineno: int) -> None:
    # jsonschema is imported here so that listing prompts does not pay for it.
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    if not isinstance(schema, dict):
        raise PromptError(f"{path}:{lineno}: output_schema must be a mapping (a JSON schema object)")
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise PromptError(
            f"{path}:{lineno}: output_schema is not a valid JSON schema: {exc.message} (at {exc.json_path})"
        ) from exc


def _variants(value: Any, path: Path, lineno: int) -> dict[str, Variant]:
    where = f"{path}:{lineno}: variants"
    variants: dict[str, Variant] = {}
    for name, spec in _mapping(value, where).items():
        spec = _mapping(spec, f"{where}.{name}")
        for key in spec:
            if key not in VARIANT_KEYS:
                raise PromptError(f"{where}.{name}: unknown key {key!r} (known: {', '.join(VARIANT_KEYS)})")
        sections = _mapping(spec.get("sections"), f"{where}.{name}.sections")
        for section, body in sections.items():
            if section not in SECTION_NAMES:
                raise PromptError(
                    f"{where}.{name}: unknown section {section!r} (expected {_known_sections()})"
                )
            if not isinstance(body, str):
                raise PromptError(f"{where}.{name}.sections.{section} must be a string")
            _check_template(body, path, lineno, f"variant {name!r} section [{section}]")
        model = spec.get("model")
        if model is not None and not isinstance(model, str):
            raise PromptError(f"{where}.{name}.model must be a string")
        variants[name] = Variant(
            name=name,
            sections={section: body.strip("\n").rstrip() for section, body in sections.items()},
            variables=_mapping(spec.get("variables"), f"{where}.{name}.variables"),
            model=model,
            parameters=_mapping(spec.get("parameters"), f"{where}.{name}.parameters"),
        )
    return variants
