"""Deployments at run time and the choice between them.

A deployment's load is the number of requests the sidecar has in flight on it; for a vLLM deployment whose
`/metrics` were scraped recently it is the server's own count (running + waiting, which includes other
clients' requests), corrected by the requests this sidecar started or finished since the scrape, plus a
penalty for queued requests and for a KV cache close to full. The least loaded healthy deployment wins; ties
are shared round-robin. With prefix affinity, a request with a long shared prefix goes to its home replica
unless that one is too loaded (see `sidecar.upstreams.affinity`).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from core.config.routing import LoadSettings
from core.settings import Deployment, ModelRoute
from sidecar.upstreams.affinity import PrefixAffinity
from sidecar.upstreams.base import UpstreamClient
from sidecar.upstreams.identity import NO_SECRETS, UrlSecrets, public_address
from sidecar.upstreams.vllm_metrics import EngineLoad

COOLDOWN_S = 5.0
_DEFAULT_LOAD = LoadSettings()


@dataclass(eq=False, slots=True)
class LiveDeployment:
    """A configured deployment with its client, its load and its health."""

    label: str
    provider: str
    upstream_model: str
    client: UpstreamClient
    timeout_s: float | None = None
    outstanding: int = 0
    cooldown_until: float = 0.0
    failures: int = 0
    kind: str = "generic"
    base_url: str | None = None
    healthy: bool = True
    """False while health checks say the replica is down; it gets no requests unless every replica is down."""
    engine: EngineLoad | None = None
    """The last scrape of its vLLM metrics (None when it has none)."""
    outstanding_at_scrape: int = 0
    secrets: UrlSecrets = NO_SECRETS
    """Its base URL's secrets: `secrets.scrub(text)` before any upstream error text leaves for a client or a log."""

    def cool_down(self) -> None:
        """Skip this deployment for a while after it failed to connect."""
        self.failures += 1
        self.cooldown_until = time.monotonic() + COOLDOWN_S

    def recover(self) -> None:
        if self.failures:
            self.failures = 0
            self.cooldown_until = 0.0

    def set_engine_load(self, load: EngineLoad | None) -> None:
        """Record a metrics scrape (or its loss); the sidecar's own in-flight count is noted with it."""
        self.engine = load
        self.outstanding_at_scrape = self.outstanding

    def load(self, now: float, settings: LoadSettings = _DEFAULT_LOAD) -> float:
        """The load score used to compare deployments (lower is better)."""
        engine = self.engine
        if engine is None or now - engine.at > settings.stale_after_s:
            return float(self.outstanding)
        # The scrape is up to an interval old: add what this sidecar sent or finished since.
        in_server = max(0.0, engine.running + engine.waiting + (self.outstanding - self.outstanding_at_scrape))
        score = in_server + settings.waiting_weight * engine.waiting
        threshold = settings.kv_cache_threshold
        if engine.kv_cache_usage > threshold:
            score += settings.kv_cache_weight * (engine.kv_cache_usage - threshold) / max(1.0 - threshold, 1e-6)
        return score

    @property
    def available(self) -> bool:
        """Healthy and not cooling down after a connection failure."""
        return self.healthy and self.cooldown_until <= time.monotonic()


@dataclass(eq=False, slots=True)
class LiveRoute:
    """A public model name with its deployments, fallback chain and balancing policy."""

    name: str
    deployments: list[LiveDeployment]
    fallbacks: list[str] = field(default_factory=list)
    load_settings: LoadSettings = _DEFAULT_LOAD
    affinity: PrefixAffinity | None = None
    context_window: int | None = None
    """The model's configured context window: the largest output budget a request may ask for."""
    _tiebreak: itertools.count = field(default_factory=itertools.count)

    def pick(self, exclude: set[int], payload: dict[str, Any] | None = None) -> LiveDeployment:
        """The deployment for the next attempt: healthy, not tried yet, not cooling down, least loaded.

        Deployments that are down or cooling down are used only when nothing else is left; with prefix
        affinity and a `payload` sharing a long prefix, the key's home replica is preferred (bounded by load).
        """
        now = time.monotonic()
        untried = [d for d in self.deployments if id(d) not in exclude]
        candidates = [d for d in untried if d.healthy and d.cooldown_until <= now]
        if not candidates:
            candidates = [d for d in untried if d.healthy] or untried or self.deployments
        if len(candidates) == 1:
            return candidates[0]
        settings = self.load_settings
        loads = [d.load(now, settings) for d in candidates]
        best = min(loads)
        affinity = self.affinity
        if affinity is not None and payload is not None:
            key = affinity.key(payload)
            if key is None:
                affinity.outcomes["none"] += 1
            else:
                home = affinity.home(key, candidates)
                if loads[candidates.index(home)] - best <= affinity.max_load_gap:
                    affinity.outcomes["home"] += 1
                    return home
                affinity.outcomes["overflow"] += 1
        tied = [d for d, load in zip(candidates, loads) if load == best]
        if len(tied) == 1:
            return tied[0]
        return tied[next(self._tiebreak) % len(tied)]


def deployment_label(public_name: str, deployment: Deployment, index: int) -> str:
    """A name for logs, metrics and the traffic record that never contains a secret.

    The configured `name`, else `public#index@scheme://host:port` (no userinfo, path or query), or the
    litellm model (with its `api_base`'s public address when it has one).
    """
    if deployment.name:
        return deployment.name
    if deployment.base_url:
        where = public_address(deployment.base_url)
        if deployment.provider == "litellm" and deployment.model:
            where = f"{deployment.model}@{where}"
    else:
        where = deployment.model or "litellm"
    return f"{public_name}#{index}@{where}"


def upstream_model_name(public_name: str, deployment: Deployment) -> str:
    return deployment.model or public_name


def route_names(models: dict[str, ModelRoute]) -> list[str]:
    return sorted(models)


def server_root(base_url: str) -> str:
    """The server's root URL (where `/health` and `/metrics` live): `base_url` without a trailing `/v1` or a query."""
    return base_url.split("?", 1)[0].removesuffix("/").removesuffix("/v1")
