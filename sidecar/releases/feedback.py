"""`POST /v1/feedback`: a business outcome for a served request, attributed to the arm that served it.

    {"request_id": "<x-request-id of the answer>", "outcome": "converted", "value": 1,
     "experiment": null, "variant": null, "user": null, "details": {...}}

`value` must lie in the outcome's declared range (`releases.feedback_outcomes`, else `releases.feedback_range`,
[-1, 1] by default); a caller needs a key when keys are required. The arm is filled from this sidecar's memory of recent requests when the body does not name it (and at query
time from the traffic log otherwise). The answer is `201 {"id": ..., "object": "feedback", ...}`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sidecar.admin.router import JsonRequest, JsonRouter
from sidecar.errors import InvalidRequest


def build_feedback_router(runtime: Any) -> JsonRouter:
    """The `/v1/feedback` router (applications call it with their key when keys are required)."""
    router = JsonRouter("/v1/feedback", identify=runtime.identify)
    router.add("POST", "", _FeedbackRoute(runtime).post)
    return router


class _FeedbackRoute:
    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime

    async def post(self, request: JsonRequest) -> tuple[int, Any]:
        body = request.json()
        request_id = _text(body, "request_id", required=True)
        outcome = _text(body, "outcome", required=True)
        value = body.get("value", 1.0)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise InvalidRequest("'value' must be a number", param="value")
        allowed = self.runtime.settings.releases.feedback_range_of(outcome or "")
        if not allowed.min <= value <= allowed.max:
            raise InvalidRequest(f"'value' for outcome '{outcome}' must be within [{allowed.min:g}, {allowed.max:g}] "
                                 "(releases.feedback_outcomes declares each outcome's range)", param="value")
        details = body.get("details")
        if details is not None and not isinstance(details, dict):
            raise InvalidRequest("'details' must be an object", param="details")
        experiment, variant = _text(body, "experiment"), _text(body, "variant")
        if variant is None:
            from sidecar.releases import find_release_state

            state = find_release_state(self.runtime)
            known = state.arm_of(request_id or "") if state is not None else None
            if known is not None:
                experiment, variant = experiment or known[0], known[1]
        user = _text(body, "user") or request.headers.get("x-tollgate-user")
        from core.releases import (  # the database layer only once feedback arrives
            ReleaseError,
            record_feedback,
        )
        from sidecar.admin import runtime_engine

        engine = runtime_engine(self.runtime)
        try:
            feedback_id = await asyncio.to_thread(
                record_feedback, engine, request_id or "", outcome or "", float(value),
                experiment=experiment, variant=variant, user=user, details=details,
            )
        except ReleaseError as exc:
            raise InvalidRequest(str(exc)) from exc
        return 201, {"id": feedback_id, "object": "feedback", "request_id": request_id, "outcome": outcome,
                     "value": float(value), "experiment": experiment, "variant": variant}


def _text(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"'{name}' must be a non-empty string", param=name)
    return value.strip()
