"""Routing: model-choice rules and escalation (a pipeline stage), and the balancing policy of each route.

`build_routing(runtime)` runs once in the lifespan (from `sidecar.stages`): it checks that every model the
rules name exists, gives each route its load settings and prefix affinity, starts the background health
checks and vLLM metrics scrapes (closed on shutdown through `runtime.extra_closers`), registers their
gauges, and returns the routing stage when rules or escalation targets are configured.
"""

from __future__ import annotations

import time
from typing import Any

from core.config.routing import RoutingSettings
from core.errors import ConfigError
from sidecar.pipeline import Stage
from sidecar.routing.complexity import HeuristicComplexity
from sidecar.routing.rules import CompiledRule
from sidecar.routing.stage import RoutingStage
from sidecar.upstreams.affinity import PrefixAffinity
from sidecar.upstreams.deployments import LiveDeployment, LiveRoute
from sidecar.upstreams.health import DeploymentMonitor


def build_routing(runtime: Any) -> list[Stage]:
    """Configure balancing and health on the runtime's routes; the routing stage when the settings ask for one."""
    settings: RoutingSettings = runtime.settings.routing
    routes: dict[str, LiveRoute] = runtime.routes
    check_models(settings, set(routes))
    configure_routes(runtime, settings)
    start_monitor(runtime, settings)
    if runtime.metrics is not None:
        register_gauges(runtime.metrics, routes)
    if not settings.has_stage:
        return []
    stage = RoutingStage(
        [CompiledRule.from_settings(rule) for rule in settings.rules],
        settings.escalation,
        HeuristicComplexity(settings.complexity),
    )
    if runtime.metrics is not None:
        runtime.metrics.add_state(
            "tollgate_route_decisions", "Requests per routing rule ('-': none matched) and chosen model since start",
            lambda: {key: float(count) for key, count in stage.decisions.items()}, ("rule", "model"),
        )
    return [stage]


def check_models(settings: RoutingSettings, known: set[str]) -> None:
    """Every model a rule sends to or escalates to must be served here (a typo is a start-up error)."""
    named: list[tuple[str, str]] = []
    for rule in settings.rules:
        named.append((f"routing.rules.{rule.name}.model", rule.model))
        if rule.escalate_to is not None:
            named.append((f"routing.rules.{rule.name}.escalate_to", rule.escalate_to))
    for source, target in settings.escalation.items():
        named.append(("routing.escalation", source))
        named.append((f"routing.escalation.{source}", target))
        if source == target:
            raise ConfigError(f"routing.escalation.{source}: a model cannot escalate to itself")
    for where, model in named:
        if model not in known:
            raise ConfigError(f"{where}: unknown model '{model}' (known: {', '.join(sorted(known)) or 'none'})")


def configure_routes(runtime: Any, settings: RoutingSettings) -> None:
    """Copy each deployment's kind and URL onto its live twin; give routes their load settings and affinity."""
    configured = runtime.settings.models
    affinity_models = set(settings.affinity.models)
    for name, route in runtime.routes.items():
        model = configured.get(name)
        if model is not None:
            for live, deployment in zip(route.deployments, model.deployments):
                live.kind = deployment.kind
                live.base_url = deployment.base_url
        route.load_settings = settings.load
        if settings.affinity.enabled and (not affinity_models or name in affinity_models):
            route.affinity = PrefixAffinity(settings.affinity)


def start_monitor(runtime: Any, settings: RoutingSettings) -> DeploymentMonitor | None:
    """Start health checks and metrics scrapes when some deployment needs them."""
    deployments = [d for route in runtime.routes.values() for d in route.deployments]
    openai = [d for d in deployments if d.provider == "openai" and d.base_url]
    vllm = [d for d in openai if d.kind == "vllm"]
    checked = openai if settings.health.enabled else vllm
    if not checked and not vllm:
        return None
    monitor = DeploymentMonitor(runtime.session, checked, vllm, settings.health, settings.load)
    monitor.start()
    runtime.extra_closers.append(monitor.aclose)
    return monitor


def register_gauges(metrics: Any, routes: dict[str, LiveRoute]) -> None:
    """Health, load scores, vLLM figures and affinity outcomes, read at scrape time."""

    def each() -> list[tuple[LiveRoute, LiveDeployment]]:
        return [(route, d) for route in routes.values() for d in route.deployments]

    def healthy() -> dict[tuple[str, ...], float]:
        return {(r.name, d.label): 1.0 if d.healthy else 0.0 for r, d in each()}

    def load() -> dict[tuple[str, ...], float]:
        now = time.monotonic()
        return {(r.name, d.label): d.load(now, r.load_settings) for r, d in each()}

    def engine() -> dict[tuple[str, ...], float]:
        values: dict[tuple[str, ...], float] = {}
        for r, d in each():
            if d.engine is not None:
                values[(r.name, d.label, "running")] = d.engine.running
                values[(r.name, d.label, "waiting")] = d.engine.waiting
                values[(r.name, d.label, "kv_cache_usage")] = d.engine.kv_cache_usage
                if d.engine.prefix_hit_rate is not None:
                    values[(r.name, d.label, "prefix_cache_hit_rate")] = d.engine.prefix_hit_rate
        return values

    def affinity() -> dict[tuple[str, ...], float]:
        return {
            (r.name, outcome): float(count)
            for r in routes.values()
            if r.affinity is not None
            for outcome, count in r.affinity.outcomes.items()
        }

    labels = ("model", "deployment")
    metrics.add_state("tollgate_upstream_healthy", "1 while health checks keep the deployment in rotation", healthy,
                      labels)
    metrics.add_state("tollgate_upstream_load", "Load score the balancer compares (lower is chosen)", load, labels)
    metrics.add_state("tollgate_vllm_engine", "Last scraped vLLM figures per deployment", engine,
                      ("model", "deployment", "figure"))
    metrics.add_state("tollgate_route_affinity_picks", "Prefix-affinity picks since start: home, overflow, none",
                      affinity, ("model", "outcome"))


__all__ = ["RoutingStage", "build_routing"]
