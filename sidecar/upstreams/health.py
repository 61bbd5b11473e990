"""Background checks of the deployments: health (a replica out and back) and vLLM load scrapes.

Two tasks run beside the request path, never on it: one GETs each checked deployment's health path every
`health.interval_s` and takes a replica out after `unhealthy_after` consecutive failures (and back after
`healthy_after` consecutive successes); the other scrapes `/metrics` of every `kind: vllm` deployment every
`load.metrics_interval_s` and stores the sample on the deployment for the balancer. A failed scrape clears
the sample, so balancing falls back to the sidecar's own in-flight count instead of trusting old figures.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiohttp

from core.config.routing import HealthSettings, LoadSettings
from sidecar.upstreams.deployments import LiveDeployment, server_root
from sidecar.upstreams.vllm_metrics import MetricsFormatError, parse_vllm_metrics

log = logging.getLogger("tollgate.sidecar.health")


@dataclass(eq=False, slots=True)
class HealthTracker:
    """Consecutive check results of one deployment and the transitions they cause."""

    deployment: LiveDeployment
    url: str
    unhealthy_after: int
    healthy_after: int
    failures: int = 0
    successes: int = 0
    last_error: str | None = None

    def observe(self, ok: bool, error: str | None = None) -> bool | None:
        """Count one check; returns the new health when it changed, else None."""
        deployment = self.deployment
        if ok:
            self.successes += 1
            self.failures = 0
            self.last_error = None
            if not deployment.healthy and self.successes >= self.healthy_after:
                deployment.healthy = True
                deployment.recover()
                return True
            return None
        self.failures += 1
        self.successes = 0
        self.last_error = error
        if deployment.healthy and self.failures >= self.unhealthy_after:
            deployment.healthy = False
            return False
        return None


class DeploymentMonitor:
    """Runs the health and metrics loops for a set of deployments; `start()` in the lifespan, `aclose()` at exit."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        health_checked: Sequence[LiveDeployment],
        scraped: Sequence[LiveDeployment],
        health: HealthSettings,
        load: LoadSettings,
    ) -> None:
        self._session = session
        self._health = health
        self._load = load
        self.trackers = [
            HealthTracker(d, server_root(d.base_url) + health.path, health.unhealthy_after, health.healthy_after)
            for d in health_checked
            if d.base_url
        ]
        self._scraped = [(d, server_root(d.base_url) + "/metrics") for d in scraped if d.base_url]
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start the loops on the running event loop (each loop checks once right away)."""
        if self.trackers:
            loop = self._every(self._health.interval_s, self.check_health_once, "health check")
            self._tasks.append(asyncio.create_task(loop, name="tollgate-health-checks"))
        if self._scraped:
            loop = self._every(self._load.metrics_interval_s, self.scrape_once, "metrics scrape")
            self._tasks.append(asyncio.create_task(loop, name="tollgate-vllm-metrics"))

    async def aclose(self) -> None:
        """Cancel the loops and wait for them to end."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def check_health_once(self) -> None:
        """One round of health checks (the loop's body; tests and the first round call it directly)."""
        await asyncio.gather(*(self._check(tracker) for tracker in self.trackers))

    async def scrape_once(self) -> None:
        """One round of metrics scrapes."""
        await asyncio.gather(*(self._scrape(deployment, url) for deployment, url in self._scraped))

    async def _every(self, interval_s: float, round_: Callable[[], Awaitable[None]], what: str) -> None:
        while True:
            try:
                await round_()
            except Exception:  # boundary: the loop must outlive any one bad round
                log.exception("%s round failed", what)
            await asyncio.sleep(interval_s)

    async def _check(self, tracker: HealthTracker) -> None:
        timeout = aiohttp.ClientTimeout(total=self._health.timeout_s)
        try:
            async with self._session.get(tracker.url, timeout=timeout) as response:
                await response.read()
                ok, error = response.status == 200, f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            ok, error = False, tracker.deployment.secrets.scrub(f"{exc.__class__.__name__}: {exc}")
        changed = tracker.observe(ok, None if ok else error)
        if changed is False:
            log.warning("deployment %s is down (%s); out of rotation", tracker.deployment.label, error)
        elif changed is True:
            log.info("deployment %s is healthy again; back in rotation", tracker.deployment.label)

    async def _scrape(self, deployment: LiveDeployment, url: str) -> None:
        timeout = aiohttp.ClientTimeout(total=self._load.metrics_timeout_s)
        try:
            async with self._session.get(url, timeout=timeout) as response:
                text = await response.text()
                if response.status != 200:
                    raise MetricsFormatError(f"HTTP {response.status}")
            deployment.set_engine_load(parse_vllm_metrics(text))
        except (aiohttp.ClientError, TimeoutError, OSError, MetricsFormatError, UnicodeDecodeError) as exc:
            if deployment.engine is not None:
                reason = deployment.secrets.scrub(f"{exc.__class__.__name__}: {exc}")
                log.warning("cannot read the metrics of %s (%s); balancing on own counts", deployment.label, reason)
            deployment.set_engine_load(None)
