"""Prometheus metrics of the sidecar, served at `GET /metrics`.

Everything here is cheap enough for the request path: label children are cached per label tuple (a dict
lookup instead of prometheus_client's `labels()` call). No label value is taken from a client unbounded, so a
misbehaving client cannot explode the series count: the model label is a configured model name or `unknown`,
the status is a valid HTTP status or `other`, and the client-supplied segment and prompt tags keep their first
`MAX_CLIENT_LABEL_VALUES` distinct combinations (later new ones count as `other`). User, feature and request
ids are never labels (they live in the traffic log).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from core.settings import Settings
from sidecar.traffic.record import CACHE_SERVED, RawTraffic

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
MAX_CLIENT_LABEL_VALUES = 100
OTHER = "other"
UNKNOWN_MODEL = "unknown"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28)


class _CappedPairs:
    """Keeps the first N distinct (segment, prompt) combinations; a later new one counts as `other`.

    Capping the combination, not each label alone, bounds the series of the histograms that carry both
    (N, not N x N); an empty value stays empty so untagged traffic is not mixed with the overflow.
    """

    def __init__(self, limit: int) -> None:
        self._seen: set[tuple[str, str]] = set()
        self._limit = limit

    def __call__(self, segment: str | None, prompt: str | None) -> tuple[str, str]:
        pair = (segment or "", prompt or "")
        if pair in self._seen or pair == ("", ""):
            return pair
        if len(self._seen) >= self._limit:
            return (OTHER if pair[0] else "", OTHER if pair[1] else "")
        self._seen.add(pair)
        return pair


def _status_label(status: int) -> str:
    return str(status) if 100 <= status <= 599 or status == 0 else OTHER


class SidecarMetrics:
    """The sidecar's metrics in their own registry (one per app, so tests can run several)."""

    def __init__(self, settings: Settings, models: Iterable[str] | None = None) -> None:
        self._settings = settings
        known = set(settings.models) | {settings.embedded.model_name} if models is None else set(models)
        self._models = frozenset(known)
        self.registry = CollectorRegistry(auto_describe=True)
        model_labels = ("endpoint", "model", "segment", "prompt")
        self.requests = Counter("tollgate_requests", "Requests by outcome", ("endpoint", "model", "status", "error_class"),
                                registry=self.registry)
        self.latency = Histogram("tollgate_request_duration_seconds", "Total request latency", model_labels,
                                 buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.ttft = Histogram("tollgate_time_to_first_token_seconds", "Time to the first streamed event",
                              model_labels, buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.tpot = Histogram("tollgate_time_per_output_token_seconds", "Streamed time per output token",
                              model_labels, buckets=_TPOT_BUCKETS, registry=self.registry)
        self.tokens = Counter("tollgate_tokens", "Tokens reported by upstreams", ("model", "direction"),
                              registry=self.registry)
        self.cost = Counter("tollgate_cost_usd", "Cost at configured prices", ("model",), registry=self.registry)
        self.unpriced = Counter("tollgate_unpriced_requests", "Requests whose model has no configured price",
                                ("model",), registry=self.registry)
        self.attempts = Counter("tollgate_upstream_retries", "Extra upstream attempts (retries and fallbacks)",
                                ("model",), registry=self.registry)
        self.guards = Counter("tollgate_guard_triggers", "Guard triggers by guard, reason and action",
                              ("guard", "reason", "action"), registry=self.registry)
        self._tags = _CappedPairs(MAX_CLIENT_LABEL_VALUES)
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe(self, record: RawTraffic, tokens_in: int | None, tokens_out: int | None) -> None:
        """Account for one finished request."""
        model = self._model_label(record)
        status = _status_label(record.status)
        self._child(self.requests, record.endpoint, model, status, record.error_class or "").inc()
        labels = (record.endpoint, model, *self._tags(record.segment, record.prompt_name))
        self._child(self.latency, *labels).observe(record.latency_ms / 1000.0)
        if record.attempts > 1:
            self._child(self.attempts, model).inc(record.attempts - 1)
        if record.ttft_ms is not None:
            self._child(self.ttft, *labels).observe(record.ttft_ms / 1000.0)
            if tokens_out and tokens_out > 1:
                per_token = (record.latency_ms - record.ttft_ms) / (tokens_out - 1) / 1000.0
                self._child(self.tpot, *labels).observe(max(per_token, 0.0))
        if (tokens_in is None and tokens_out is None) or record.cache_status in CACHE_SERVED:
            return  # a cached answer bills no upstream tokens
        self._child(self.tokens, model, "input").inc(tokens_in or 0)
        self._child(self.tokens, model, "output").inc(tokens_out or 0)
        price = self._settings.price_for(model)
        if price is None and model == self._settings.embedded.model_name:
            self._child(self.cost, model).inc(0)
        elif price is None:
            self._child(self.unpriced, model).inc()
        else:
            cost = ((tokens_in or 0) * price.input_per_mtok + (tokens_out or 0) * price.output_per_mtok) / 1e6
            self._child(self.cost, model).inc(cost)

    def _model_label(self, record: RawTraffic) -> str:
        """The configured model that served (or was asked for); `unknown` for any name a client made up."""
        for name in (record.served_model, record.requested_model):
            if name in self._models:
                return name
        return UNKNOWN_MODEL if record.served_model or record.requested_model else ""

    def guard_triggered(self, guard: str, reason: str, action: str) -> None:
        """Count one guard trigger (labels come from configuration and fixed reason codes, not clients)."""
        self._child(self.guards, guard, reason, action).inc()

    def add_state(self, name: str, documentation: str, read: Callable[[], dict[tuple[str, ...], float]],
                  labels: tuple[str, ...]) -> None:
        """A gauge read at scrape time (queue depth, upstream health), never updated on the request path."""
        self.registry.register(_StateCollector(name, documentation, read, labels))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector:
    def __init__(self, name: str, documentation: str, read: Callable[[], dict[tuple[str, ...], float]],
                 labels: tuple[str, ...]) -> None:
        self._name, self._doc, self._read, self._labels = name, documentation, read, labels

    def describe(self) -> list[GaugeMetricFamily]:
        return [GaugeMetricFamily(self._name, self._doc, labels=list(self._labels))]

    def collect(self) -> list[GaugeMetricFamily]:
        family = GaugeMetricFamily(self._name, self._doc, labels=list(self._labels))
        for label_values, value in self._read().items():
            family.add_metric(list(label_values), value)
        return [family]


__all__ = ["CONTENT_TYPE", "Gauge", "SidecarMetrics"]
