"""Assembling the sidecar's live state from settings: routes, clients, the embedded model, the traffic log."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from core.settings import Deployment, ModelRoute, Settings
from core.tag_policy import TagPolicy
from sidecar.upstreams.base import UpstreamClient
from sidecar.upstreams.deployments import LiveDeployment, LiveRoute, deployment_label, upstream_model_name
from sidecar.upstreams.identity import url_secrets
from sidecar.upstreams.litellm_provider import LitellmClient
from sidecar.upstreams.openai_compat import OpenAICompatClient, create_session

log = logging.getLogger("tollgate.sidecar")


@dataclass(eq=False)
class Runtime:
    """Everything the request path needs, created in the lifespan and closed on shutdown."""

    settings: Settings
    session: aiohttp.ClientSession
    routes: dict[str, LiveRoute]
    tags: TagPolicy = field(default_factory=TagPolicy)
    """Cleans client-supplied tags (PII, hashed user ids) before anything stores or exports them."""
    forwarder: Any = None
    metrics: Any = None
    tracer: Any = None
    traffic: Any = None
    embedded: Any = None
    stages: list[Any] = field(default_factory=list)
    extra_routes: list[Any] = field(default_factory=list)
    ready: bool = False
    extra_closers: list[Any] = field(default_factory=list)
    database: Any = None
    identify: Any = None
    """`sidecar.callers.Identify`: who calls a non-proxy `/v1` route (set at start-up, after the stages)."""


def needs_embedded(settings: Settings) -> bool:
    """Start the local model when asked to, or when no upstream is configured at all."""
    mode = settings.embedded.enabled
    return mode == "always" or (mode == "auto" and not settings.models)


def build_routes(settings: Settings, session: aiohttp.ClientSession, embedded_url: str | None) -> dict[str, LiveRoute]:
    """One `LiveRoute` per public model name; the embedded model is added when it runs."""
    models: dict[str, ModelRoute] = dict(settings.models)
    if embedded_url is not None and settings.embedded.model_name not in models:
        local = Deployment(name="embedded-llama.cpp", base_url=embedded_url, model=settings.embedded.model_name)
        models[settings.embedded.model_name] = ModelRoute(deployments=[local], context_window=settings.embedded.context)
    routes: dict[str, LiveRoute] = {}
    for name, route in models.items():
        live = [
            LiveDeployment(
                label=deployment_label(name, deployment, index),
                provider=deployment.provider,
                upstream_model=upstream_model_name(name, deployment),
                client=make_client(deployment, session),
                timeout_s=deployment.timeout_s,
                secrets=url_secrets(deployment.base_url),
            )
            for index, deployment in enumerate(route.deployments)
        ]
        routes[name] = LiveRoute(
            name=name, deployments=live, fallbacks=list(route.fallbacks), context_window=route.context_window
        )
    _check_fallbacks(routes)
    return routes


def make_client(deployment: Deployment, session: aiohttp.ClientSession) -> UpstreamClient:
    if deployment.provider == "litellm":
        assert deployment.model is not None
        scrub = url_secrets(deployment.base_url).scrub
        return LitellmClient(deployment.model, deployment.api_key(), deployment.base_url, scrub)
    assert deployment.base_url is not None
    return OpenAICompatClient(session, deployment.base_url, deployment.api_key())


def _check_fallbacks(routes: dict[str, LiveRoute]) -> None:
    from core.errors import ConfigError

    for route in routes.values():
        for name in route.fallbacks:
            if name not in routes:
                raise ConfigError(f"models.{route.name}.fallbacks: unknown model '{name}'")
            if name == route.name:
                raise ConfigError(f"models.{route.name}.fallbacks: a model cannot fall back to itself")


def create_runtime_session(settings: Settings) -> aiohttp.ClientSession:
    return create_session(settings.sidecar.pool_size)
