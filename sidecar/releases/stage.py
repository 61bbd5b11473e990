"""The release stage: prompts served by name, and the arm (production, canary, A/B) that serves each request.

A chat request may name a prompt instead of sending messages:

    {"model": "m", "prompt": {"name": "booking_extract", "variables": {...}, "variant": "fr", "label": "canary"}}

The stage picks the arm from the current release snapshot (sticky by user: `X-Tollgate-User` or the body's
`user`), renders that arm's prompt version, and replaces the body with the rendered messages, the prompt's
parameters and response format, and the arm's model when it names one (else the request's model, else the
prompt's). The client's other fields (`stream`, `max_tokens`, `user`, ...) are kept and win. A request whose
`model` is a released model alias gets the arm's model. `label` (or `X-Tollgate-Release-Label`) pins a label
or experiment arm. Each request records `prompt_name`, `prompt_version`, `variant` and `experiment`. When the
subject has a `shadow` label, the mirrored request is prepared here and sent by the shadow stage after the
answer went out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.prompts import PromptError, render
from core.releases.assignment import choose_arm
from core.releases.snapshot import Arm, SubjectState
from core.tables.releases import KIND_MODEL
from sidecar.errors import InvalidRequest, NotReady
from sidecar.pipeline import BaseStage, Exchange, Reply
from sidecar.releases.state import ReleaseState

PIN_HEADER = "x-tollgate-release-label"
SHADOW_STATE = "shadow"
_PROMPT_KEYS = frozenset({"name", "variables", "variant", "label"})
_REPLACED = frozenset({"prompt", "messages", "model"})


@dataclass(frozen=True, slots=True)
class ShadowPlan:
    """The mirrored request the shadow stage sends once the client has its answer."""

    payload: dict[str, Any]
    prompt_name: str | None
    version: str | None


class ReleaseStage(BaseStage):
    """Renders prompts named in requests and applies release arms (see the module docstring)."""

    name = "releases"

    def __init__(self, state: ReleaseState, *, shadowing: bool) -> None:
        self.state = state
        self.salt = state.settings.sticky_salt
        self.shadowing = shadowing

    async def on_request(self, exchange: Exchange) -> Reply | None:
        payload = exchange.payload
        prompt = payload.get("prompt")
        if exchange.endpoint == "chat.completions" and prompt is not None:
            self._serve_prompt(exchange, prompt)
            return None
        subjects = self.state.snapshot.subjects
        if subjects:
            subject = subjects.get(payload.get("model"))  # type: ignore[arg-type]
            if subject is not None and subject.kind == KIND_MODEL:
                self._serve_model(exchange, subject)
        return None

    def _serve_prompt(self, exchange: Exchange, prompt: Any) -> None:
        name, variables, variant, pinned = _prompt_request(exchange, prompt)
        if "messages" in exchange.payload:
            raise InvalidRequest("send either 'messages' or 'prompt', not both", param="prompt")
        subject = self.state.snapshot.subjects.get(name)
        if subject is None or subject.kind == KIND_MODEL:
            raise InvalidRequest(f"prompt '{name}' has no release: promote a version first "
                                 f"(tollgate release promote {name})", param="prompt.name", code="prompt_not_released")
        arm = self._arm(exchange, subject, pinned)
        version = arm.version or ""
        prompt_file = self.state.prompt(name, version)
        if prompt_file is None:
            raise NotReady(f"prompt {name}@{version} is not loaded on this sidecar yet")
        try:
            rendered = render(prompt_file, variables, variant)
        except PromptError as exc:
            raise InvalidRequest(str(exc), param="prompt.variables", code="invalid_prompt_variables") from exc
        extras = {key: value for key, value in exchange.payload.items() if key not in _REPLACED}
        requested = exchange.payload.get("model")
        body = rendered.request_body(arm.model or requested or rendered.model)
        body.update(extras)
        self._apply(exchange, body, arm, name)
        shadow = subject.shadow
        if self.shadowing and shadow is not None and shadow.version:
            shadow_file = self.state.prompt(name, shadow.version)
            try:
                mirrored = render(shadow_file, variables, variant) if shadow_file is not None else None
            except PromptError:
                mirrored = None  # the candidate needs other variables: nothing to compare, the client is unaffected
            if mirrored is not None:
                shadow_body = mirrored.request_body(shadow.model or requested or mirrored.model)
                shadow_body.update(extras)
                exchange.state[SHADOW_STATE] = ShadowPlan(shadow_body, name, shadow.version)

    def _serve_model(self, exchange: Exchange, subject: SubjectState) -> None:
        arm = self._arm(exchange, subject, exchange.headers.get(PIN_HEADER))
        if arm.model is None:
            return
        body = dict(exchange.payload, model=arm.model)
        self._apply(exchange, body, arm, None)
        shadow = subject.shadow
        if self.shadowing and shadow is not None and shadow.model:
            exchange.state[SHADOW_STATE] = ShadowPlan(dict(exchange.payload, model=shadow.model), None, None)

    def _arm(self, exchange: Exchange, subject: SubjectState, pinned: str | None) -> Arm:
        record = exchange.record
        arm = choose_arm(subject, record.user or record.request_id, self.salt, pinned)
        if arm is None:
            if pinned is not None:
                raise InvalidRequest(f"'{subject.subject}' has no label or experiment arm '{pinned}'",
                                     param="prompt.label", code="release_label_not_found")
            raise InvalidRequest(f"'{subject.subject}' has no production release", code="prompt_not_released")
        return arm

    def _apply(self, exchange: Exchange, body: dict[str, Any], arm: Arm, prompt_name: str | None) -> None:
        exchange.payload = body
        exchange.body = None
        record = exchange.record
        record.variant, record.experiment = arm.variant, arm.experiment
        if prompt_name is not None:
            record.prompt_name, record.prompt_version = prompt_name, arm.version
            exchange.response_headers.append((b"x-tollgate-prompt-version", (arm.version or "").encode()))
        exchange.response_headers.append((b"x-tollgate-variant", arm.variant.encode()))
        self.state.remember(record.request_id, arm.experiment, arm.variant)


def _prompt_request(exchange: Exchange, prompt: Any) -> tuple[str, dict[str, Any], str | None, str | None]:
    """Name, variables, prompt-file variant and pinned label of a `prompt` object, checked."""
    if not isinstance(prompt, dict):
        raise InvalidRequest("'prompt' must be an object: {\"name\": ..., \"variables\": {...}}", param="prompt")
    unknown = sorted(set(prompt) - _PROMPT_KEYS)
    if unknown:
        raise InvalidRequest(f"unknown key(s) in 'prompt': {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(_PROMPT_KEYS))})", param="prompt")
    name = prompt.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest("'prompt.name' must be a non-empty string", param="prompt.name")
    variables = prompt.get("variables", {})
    if not isinstance(variables, dict):
        raise InvalidRequest("'prompt.variables' must be an object", param="prompt.variables",
                             code="invalid_prompt_variables")
    variant, pinned = prompt.get("variant"), prompt.get("label") or exchange.headers.get(PIN_HEADER)
    for key, value in (("variant", variant), ("label", pinned)):
        if value is not None and not isinstance(value, str):
            raise InvalidRequest(f"'prompt.{key}' must be a string", param=f"prompt.{key}")
    return name, variables, variant, pinned
