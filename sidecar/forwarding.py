"""Getting an answer started: deployment choice, retries with backoff, the fallback chain and timeouts.

A request is retried (on another deployment when there is one) after a connection error, a timeout before
the first byte, a 429 or a 5xx; it then moves along the model's fallback chain. Once an upstream has answered
with a non-retryable status, that answer is the result. An answer that is read whole (every non-stream
answer, and a stream request's error answer) is read here before it counts as started, so a body that breaks
off or goes silent half-way is retried like a connection failure: nothing has reached the client yet. A
streamed body is never retried once it has started, since its events go to the client as they arrive.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

import orjson

from core.settings import SidecarSettings
from sidecar.admission import Admission
from sidecar.errors import ModelNotFound, SidecarError, UpstreamError, UpstreamTimeout
from sidecar.upstreams.base import (
    ReadResponse,
    Timeouts,
    UpstreamConnectError,
    UpstreamResponse,
    UpstreamStreamError,
    UpstreamTimeoutError,
)
from sidecar.upstreams.deployments import LiveDeployment, LiveRoute
from sidecar.validation import check_output_tokens

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
MAX_BACKOFF_S = 2.0
MAX_RETRY_AFTER_S = 5.0
MAX_CHAIN = 5


@dataclass(slots=True)
class Started:
    """An upstream that has answered with its status; the body is still to be read."""

    response: UpstreamResponse
    route: LiveRoute
    deployment: LiveDeployment
    attempts: int


class Forwarder:
    """Opens upstream responses for requests, following the retry and fallback policy."""

    def __init__(
        self, routes: dict[str, LiveRoute], settings: SidecarSettings, admission: Admission | None = None
    ) -> None:
        self.routes = routes
        self.admission = admission
        self._settings = settings
        self._timeouts = Timeouts(settings.connect_timeout_s, settings.first_byte_timeout_s, settings.idle_timeout_s)

    def route(self, model: str) -> LiveRoute:
        route = self.routes.get(model)
        if route is None:
            known = ", ".join(sorted(self.routes)) or "none configured"
            raise ModelNotFound(f"The model '{model}' does not exist (available: {known})", param="model")
        return route

    async def start(self, path: str, payload: dict, body: bytes) -> Started:
        """Send the request along the route of `payload['model']` until an upstream answers."""
        route = self.route(payload["model"])
        check_output_tokens(payload, route.context_window)
        chain = [route] + [self.routes[name] for name in route.fallbacks if name in self.routes][:MAX_CHAIN]
        attempts = 0
        last_error: SidecarError | None = None
        for live in chain:
            tried: set[int] = set()
            for retry in range(self._settings.retries + 1):
                deployment = live.pick(tried, payload)
                tried.add(id(deployment))
                attempts += 1
                outcome = await self._attempt(live, deployment, path, payload, body)
                if isinstance(outcome, Started):
                    outcome.attempts = attempts
                    return outcome
                last_error, wait_s = outcome
                if retry < self._settings.retries:
                    await asyncio.sleep(wait_s)
        assert last_error is not None
        last_error.message = f"{last_error.message} (after {attempts} attempts)"
        raise last_error

    async def _attempt(
        self, live: LiveRoute, deployment: LiveDeployment, path: str, payload: dict, body: bytes
    ) -> Started | tuple[SidecarError, float]:
        request_body, request_payload = _for_deployment(deployment, payload, body)
        timeouts = self._timeouts
        if deployment.timeout_s is not None:
            timeouts = Timeouts(timeouts.connect_s, deployment.timeout_s, timeouts.idle_s)
        gate = self.admission.gate(deployment.label) if self.admission is not None else None
        if gate is not None:
            await gate.enter(deployment)  # a full queue or a passed deadline raises Overloaded (503)
        deployment.outstanding += 1
        try:
            response = await deployment.client.send(path, request_body, request_payload, timeouts)
        except UpstreamConnectError as exc:
            deployment.outstanding -= 1
            deployment.cool_down()
            return UpstreamError(deployment.secrets.scrub(f"{deployment.label}: {exc}")), self._backoff(0)
        except UpstreamTimeoutError as exc:
            deployment.outstanding -= 1
            return UpstreamTimeout(deployment.secrets.scrub(f"{deployment.label}: {exc}")), 0.0
        except BaseException:
            deployment.outstanding -= 1
            raise
        if response.status in RETRYABLE_STATUS:
            deployment.outstanding -= 1
            response.release()
            error = UpstreamError(f"{deployment.label} answered HTTP {response.status}")
            return error, self._backoff(deployment.failures, response.retry_after_s)
        if response.status != 200 or not payload.get("stream"):
            read = await self._read_whole(deployment, response)
            if isinstance(read, tuple):
                return read
            response = read
        deployment.recover()
        return Started(response, live, deployment, 0)

    async def _read_whole(
        self, deployment: LiveDeployment, response: UpstreamResponse
    ) -> ReadResponse | tuple[SidecarError, float]:
        """The answer read whole, or the error to retry with when its body broke off or went silent."""
        try:
            return await ReadResponse.read_from(response)
        except UpstreamStreamError as exc:
            deployment.outstanding -= 1
            deployment.cool_down()
            return UpstreamError(f"{deployment.label}: {exc}"), self._backoff(0)
        except UpstreamTimeoutError as exc:
            deployment.outstanding -= 1
            return UpstreamTimeout(f"{deployment.label}: {exc}"), 0.0
        except BaseException:
            deployment.outstanding -= 1
            raise

    def _backoff(self, failures: int, retry_after_s: float | None = None) -> float:
        if retry_after_s is not None:
            return min(retry_after_s, MAX_RETRY_AFTER_S)
        base = self._settings.retry_backoff_s * (2 ** min(failures, 5))
        return min(MAX_BACKOFF_S, base * (0.5 + random.random()))


def _for_deployment(deployment: LiveDeployment, payload: dict, body: bytes) -> tuple[bytes, dict]:
    """The request as this deployment expects it; the original bytes are reused when nothing changes."""
    changed = payload.get("model") != deployment.upstream_model
    if payload.get("stream"):
        options = payload.get("stream_options") or {}
        if options.get("include_usage") is not True:
            changed = True
    if not changed:
        return body, payload
    request = dict(payload)
    request["model"] = deployment.upstream_model
    if request.get("stream"):
        # Ask for usage in the final chunk so streamed calls are never recorded without tokens.
        request["stream_options"] = {**(payload.get("stream_options") or {}), "include_usage": True}
    return orjson.dumps(request), request
