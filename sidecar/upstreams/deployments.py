"""Deployments at run time and the choice between them: least outstanding requests, with cool-down."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

from core.settings import Deployment, ModelRoute
from sidecar.upstreams.base import UpstreamClient

COOLDOWN_S = 5.0


@dataclass(eq=False, slots=True)
class LiveDeployment:
    """A configured deployment with its client and its load."""

    label: str
    provider: str
    upstream_model: str
    client: UpstreamClient
    timeout_s: float | None = None
    outstanding: int = 0
    cooldown_until: float = 0.0
    failures: int = 0

    def cool_down(self) -> None:
        """Skip this deployment for a while after it failed to connect."""
        self.failures += 1
        self.cooldown_until = time.monotonic() + COOLDOWN_S

    def recover(self) -> None:
        if self.failures:
            self.failures = 0
            self.cooldown_until = 0.0


@dataclass(eq=False, slots=True)
class LiveRoute:
    """A public model name with its deployments and fallback chain."""

    name: str
    deployments: list[LiveDeployment]
    fallbacks: list[str] = field(default_factory=list)
    _tiebreak: itertools.count = field(default_factory=itertools.count)

    def pick(self, exclude: set[int]) -> LiveDeployment:
        """The deployment with the fewest requests in flight, preferring ones not tried and not cooling down.

        Ties are broken round-robin so equal deployments share the load.
        """
        now = time.monotonic()
        candidates = [d for d in self.deployments if id(d) not in exclude and d.cooldown_until <= now]
        if not candidates:
            candidates = [d for d in self.deployments if id(d) not in exclude] or self.deployments
        if len(candidates) == 1:
            return candidates[0]
        turn = next(self._tiebreak)
        best = min(d.outstanding for d in candidates)
        tied = [d for d in candidates if d.outstanding == best]
        return tied[turn % len(tied)]


def deployment_label(public_name: str, deployment: Deployment, index: int) -> str:
    """A name for logs and the traffic record that never contains a secret."""
    if deployment.name:
        return deployment.name
    where = deployment.base_url or deployment.model or "litellm"
    return f"{public_name}#{index}@{where}"


def upstream_model_name(public_name: str, deployment: Deployment) -> str:
    return deployment.model or public_name


def route_names(models: dict[str, ModelRoute]) -> list[str]:
    return sorted(models)
