"""The prompt registry: parsing, validation errors, rendering, variants, versions and the shipped prompts."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest

from core.errors import TollgateError
from core.prompts import (
    PromptError,
    PromptRegistry,
    load_prompt,
    render,
    response_format,
    variables,
)

REPO_PROMPTS = Path(__file__).resolve().parents[2] / "prompts"

BOOKING = """\
---
name: booking
label: first
description: Extract a booking.
model: local/test
parameters: {temperature: 0, max_tokens: 50}
tags: [extraction, booking]
output_schema:
  type: object
  properties:
    city: {type: string}
  required: [city]
  additionalProperties: false
variants:
  fr:
    variables: {language: French}
    sections:
      SYSTEM: Tu extrais des réservations.
    parameters: {temperature: 0.2}
  business:
    model: local/big
---
[SYSTEM]
You extract bookings.

[CONTEXT]
{% if language is defined %}Language: {{ language }}{% endif %}

[INSTRUCTION]
Extract the city from: {{ booking_text }}

[FORMAT]
Answer with JSON matching:
{{ output_schema }}
"""


def write(root: Path, name: str, text: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{name}.prompt"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_load_reads_header_sections_and_version(tmp_path):
    path = write(tmp_path, "booking", BOOKING)
    prompt = load_prompt(path)
    assert prompt.name == "booking"
    assert prompt.label == "first"
    assert prompt.model == "local/test"
    assert prompt.parameters == {"temperature": 0, "max_tokens": 50}
    assert prompt.tags == ("extraction", "booking")
    assert list(prompt.sections) == ["SYSTEM", "CONTEXT", "INSTRUCTION", "FORMAT"]
    assert prompt.sections["SYSTEM"] == "You extract bookings."
    instruction_line = BOOKING.splitlines().index("Extract the city from: {{ booking_text }}") + 1
    assert prompt.section_lines["INSTRUCTION"] == instruction_line
    assert prompt.version == hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    assert sorted(prompt.variants) == ["business", "fr"]
    assert prompt.source == path.read_text(encoding="utf-8")


def test_version_changes_with_any_byte(tmp_path):
    path = write(tmp_path, "booking", BOOKING)
    first = load_prompt(path).version
    path.write_text(BOOKING + " ", encoding="utf-8")
    second = load_prompt(path).version
    assert len(first) == 12 and first != second


def test_render_builds_system_and_one_user_message(tmp_path):
    prompt = load_prompt(write(tmp_path, "booking", BOOKING))
    rendered = render(prompt, {"booking_text": "Two nights in Porto"})
    assert rendered.name == "booking" and rendered.version == prompt.version and rendered.variant is None
    assert rendered.model == "local/test"
    assert rendered.messages[0] == {"role": "system", "content": "You extract bookings."}
    user = rendered.messages[1]
    assert user["role"] == "user" and len(rendered.messages) == 2
    # The CONTEXT section renders empty without a language, so it is skipped.
    assert user["content"].startswith(
        "Extract the city from: Two nights in Porto\n\nAnswer with JSON matching:\n{"
    )
    assert '"additionalProperties": false' in user["content"]
    assert '  "type": "object"' in user["content"]  # pretty JSON


def test_variant_overrides_sections_variables_model_and_parameters(tmp_path):
    prompt = load_prompt(write(tmp_path, "booking", BOOKING))
    french = render(prompt, {"booking_text": "Deux nuits à Porto"}, variant="fr")
    assert french.variant == "fr"
    assert french.messages[0]["content"] == "Tu extrais des réservations."
    assert french.messages[1]["content"].startswith("Language: French\n\nExtract the city from: Deux nuits")
    assert french.parameters == {"temperature": 0.2, "max_tokens": 50}
    business = render(prompt, {"booking_text": "x"}, variant="business")
    assert business.model == "local/big" and business.parameters == prompt.parameters


def test_given_variables_win_over_variant_variables(tmp_path):
    prompt = load_prompt(write(tmp_path, "booking", BOOKING))
    rendered = render(prompt, {"booking_text": "x", "language": "Portuguese"}, variant="fr")
    assert rendered.messages[1]["content"].startswith("Language: Portuguese")


def test_unknown_variant_lists_known_ones(tmp_path):
    prompt = load_prompt(write(tmp_path, "booking", BOOKING))
    with pytest.raises(PromptError, match=r"unknown variant 'de' \(variants: business, fr\)"):
        render(prompt, {"booking_text": "x"}, variant="de")


def test_undefined_variable_names_it_and_the_given_ones(tmp_path):
    prompt = load_prompt(write(tmp_path, "booking", BOOKING))
    with pytest.raises(PromptError) as info:
        render(prompt, {"a": 1, "b": 2})
    assert str(info.value) == "prompt booking: variable 'booking_text' is not defined (given: a, b)"
    assert isinstance(info.value, TollgateError)


def test_missing_attribute_of_a_given_value_is_a_prompt_error(tmp_path):
    write(tmp_path, "nested", "---\n---\n[INSTRUCTION]\nGo to {{ trip.city }}\n")
    prompt = load_prompt(tmp_path / "nested.prompt")
    with pytest.raises(PromptError, match=r"prompt nested: section \[INSTRUCTION\]: .*city.*\(given: trip\)"):
        render(prompt, {"trip": {"town": "Oslo"}})


def test_variables_lists_undeclared_names_minus_automatic_ones(tmp_path):
    prompt = load_prompt(write(tmp_path, "booking", BOOKING))
    assert variables(prompt) == {"booking_text", "language"}
    assert variables(prompt, "fr") == {"booking_text"}


def test_sandbox_blocks_unsafe_attribute_access(tmp_path):
    write(tmp_path, "evil", "---\n---\n[INSTRUCTION]\n{{ x.__class__.__mro__ }}\n")
    with pytest.raises(PromptError, match="prompt evil"):
        render(load_prompt(tmp_path / "evil.prompt"), {"x": "text"})


def test_values_are_not_html_escaped_and_tojson_keeps_text(tmp_path):
    write(tmp_path, "raw", "---\n---\n[INSTRUCTION]\n{{ text }} {{ data | tojson }}\n")
    rendered = render(load_prompt(tmp_path / "raw.prompt"), {"text": "<a & b>", "data": {"k": "é<"}})
    assert rendered.messages == [{"role": "user", "content": '<a & b> {"k": "é<"}'}]


def test_response_format_and_request_body(tmp_path):
    prompt = load_prompt(write(tmp_path, "booking", BOOKING))
    rendered = render(prompt, {"booking_text": "x"})
    expected = {
        "type": "json_schema",
        "json_schema": {"name": "booking", "schema": prompt.output_schema, "strict": True},
    }
    assert response_format(rendered) == expected
    body = rendered.request_body()
    assert body["model"] == "local/test" and body["temperature"] == 0 and body["max_tokens"] == 50
    assert body["response_format"] == expected and body["messages"] == rendered.messages
    assert rendered.request_body(model="other")["model"] == "other"


def test_response_format_is_none_without_schema(tmp_path):
    write(tmp_path, "plain", "---\nmodel: m\n---\n[SYSTEM]\nHello\n")
    rendered = render(load_prompt(tmp_path / "plain.prompt"))
    assert rendered.messages == [{"role": "system", "content": "Hello"}]
    assert response_format(rendered) is None and "response_format" not in rendered.request_body()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no header\n[SYSTEM]\nx\n", r"x\.prompt:1: a prompt file starts with a YAML header"),
        ("---\nname: x\n[SYSTEM]\nx\n", r"x\.prompt:1: the YAML header opened here is never closed"),
        ("---\nname: x\nmodel: [unclosed\n---\n[SYSTEM]\nx\n", r"x\.prompt:\d+: invalid YAML header"),
        ("---\n- a list\n---\n[SYSTEM]\nx\n", r"x\.prompt:2: the YAML header must be a mapping"),
        ("---\n---\n[SYSTEM]\nx\n\n[EXAMPLES]\ny\n", r"x\.prompt:6: unknown section \[EXAMPLES\]"),
        (
            "---\n---\n[SYSTEM]\nx\n[SYSTEM]\ny\n",
            r"x\.prompt:5: section \[SYSTEM\] appears twice \(first at line 4\)",
        ),
        ("---\n---\nstray text\n[SYSTEM]\nx\n", r"x\.prompt:3: text before the first section"),
        ("---\n---\n\n", r"x\.prompt: the prompt has no non-empty section"),
        ("---\n---\n[SYSTEM]\n\n[FORMAT]\n", r"x\.prompt: the prompt has no non-empty section"),
        (
            "---\nmodle: m\n---\n[SYSTEM]\nx\n",
            r"x\.prompt:2: unknown header field 'modle'; did you mean 'model'\?",
        ),
        (
            "---\nname: other\n---\n[SYSTEM]\nx\n",
            r"x\.prompt:2: header name 'other' does not match the file name",
        ),
        ("---\ntags: 3\n---\n[SYSTEM]\nx\n", r"x\.prompt:2: tags must be a list of strings"),
        ("---\nmodel: 3\n---\n[SYSTEM]\nx\n", r"x\.prompt:2: model must be a string"),
        ("---\nparameters: [1]\n---\n[SYSTEM]\nx\n", r"x\.prompt:2: parameters must be a mapping"),
        (
            "---\ndescription: d\noutput_schema: {type: objekt}\n---\n[SYSTEM]\nx\n",
            r"x\.prompt:3: output_schema is not a valid JSON schema: .*objekt.* \(at \$\.type\)",
        ),
        ("---\noutput_schema: [1]\n---\n[SYSTEM]\nx\n", r"x\.prompt:2: output_schema must be a mapping"),
        ("---\n---\n[SYSTEM]\nok\n\nbad {{ x \n", r"x\.prompt:6: template error in section \[SYSTEM\]"),
        (
            "---\nvariants:\n  fr: {sections: {HEADER: x}}\n---\n[SYSTEM]\nx\n",
            r"x\.prompt:2: variants\.fr: unknown section 'HEADER'",
        ),
        (
            "---\nvariants:\n  fr: {locale: fr}\n---\n[SYSTEM]\nx\n",
            r"x\.prompt:2: variants\.fr: unknown key 'locale'",
        ),
        (
            "---\nvariants:\n  fr: {sections: {SYSTEM: '{% if %}'}}\n---\n[SYSTEM]\nx\n",
            r"x\.prompt:2: template error in variant 'fr' section \[SYSTEM\]",
        ),
    ],
)
def test_bad_files_fail_with_file_and_line(tmp_path, text, message):
    path = tmp_path / "x.prompt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PromptError, match=message) as info:
        load_prompt(path)
    assert "\n" not in str(info.value)


def test_missing_and_non_utf8_files(tmp_path):
    with pytest.raises(PromptError, match=r"nope\.prompt: no such prompt file"):
        load_prompt(tmp_path / "nope.prompt")
    (tmp_path / "bin.prompt").write_bytes(b"---\n---\n[SYSTEM]\n\xff\n")
    with pytest.raises(PromptError, match=r"bin\.prompt: not valid UTF-8"):
        load_prompt(tmp_path / "bin.prompt")


def test_name_defaults_to_file_stem(tmp_path):
    prompt = load_prompt(write(tmp_path, "stem_only", "---\n---\n[INSTRUCTION]\nHi {{ who }}\n"))
    assert prompt.name == "stem_only" and prompt.model is None and prompt.label is None
    assert render(prompt, {"who": "you"}).messages == [{"role": "user", "content": "Hi you"}]


def test_registry_lists_gets_and_renders(tmp_path):
    write(tmp_path, "booking", BOOKING)
    write(tmp_path, "alpha", "---\n---\n[SYSTEM]\nA\n")
    (tmp_path / "notes.txt").write_text("ignored")
    registry = PromptRegistry(tmp_path)
    assert registry.names() == ["alpha", "booking"]
    assert [p.name for p in registry.list()] == ["alpha", "booking"]
    assert registry.get("booking") is registry.get("booking")  # cached while unchanged
    assert registry.render("booking", {"booking_text": "x"}, variant="fr").variant == "fr"


def test_registry_sees_edits(tmp_path):
    path = write(tmp_path, "alpha", "---\n---\n[SYSTEM]\nA\n")
    registry = PromptRegistry(tmp_path)
    before = registry.get("alpha")
    path.write_text("---\n---\n[SYSTEM]\nA longer system text\n", encoding="utf-8")
    after = registry.get("alpha")
    assert after.sections["SYSTEM"] == "A longer system text" and after.version != before.version


def test_registry_unknown_prompt_suggests_close_matches(tmp_path):
    write(tmp_path, "booking_extract", BOOKING.replace("name: booking", "name: booking_extract"))
    write(tmp_path, "support_classify", "---\n---\n[SYSTEM]\nA\n")
    registry = PromptRegistry(tmp_path)
    with pytest.raises(
        PromptError, match=r"unknown prompt 'booking_extrct' .*did you mean: booking_extract\?"
    ):
        registry.get("booking_extrct")
    with pytest.raises(PromptError, match=r"unknown prompt 'zzz' .*known: booking_extract, support_classify"):
        registry.get("zzz")
    with pytest.raises(PromptError, match="invalid prompt name"):
        registry.get("../secrets")


def test_registry_missing_root(tmp_path):
    with pytest.raises(PromptError, match="prompt directory .*missing does not exist"):
        PromptRegistry(tmp_path / "missing").list()


def test_shipped_prompts_load_and_render():
    registry = PromptRegistry(REPO_PROMPTS)
    assert {"booking_extract", "support_classify", "policy_faq"} <= set(registry.names())

    booking = registry.render(
        "booking_extract", {"booking_text": "2 adults, Lisbon, 4 nights from 2025-05-03"}
    )
    schema = booking.output_schema
    assert schema is not None
    assert set(schema["properties"]) == {"destination", "check_in", "nights", "guests"}
    assert "JSON only" in booking.messages[-1]["content"] and '"check_in"' in booking.messages[-1]["content"]
    assert response_format(booking)["json_schema"]["strict"] is True

    support = registry.render("support_classify", {"message": "I want my money back"})
    labels = support.output_schema["properties"]["label"]["enum"]
    assert labels == ["booking_change", "cancellation", "refund", "complaint", "other"]
    assert "I want my money back" in support.messages[-1]["content"]

    faq = registry.render(
        "policy_faq", {"context": "Pets are not allowed.", "question": "Can I bring a dog?"}
    )
    assert faq.output_schema is None
    assert "Pets are not allowed." in faq.messages[-1]["content"]
    assert "only" in faq.messages[0]["content"]
