"""The routing stage: picks the model a request is served by, and the stronger model to escalate to.

The first rule that matches rewrites `payload["model"]` (the traffic record keeps the requested name in
`requested_model`, the served one in `served_model`) and writes why into `record.route_reason`
(`rule long-inputs: input_tokens=3400>=3000 -> big`); the response carries `x-tollgate-route: <rule>`.
`exchange.escalate_to` is set from the rule's `escalate_to`, else from `routing.escalation` for the chosen
model; the guard stage retries with it when an answer fails validation.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from sidecar.pipeline import BaseStage, Exchange, Reply
from sidecar.routing.complexity import ComplexityClassifier
from sidecar.routing.rules import CompiledRule, RequestFacts

ROUTE_HEADER = b"x-tollgate-route"


class RoutingStage(BaseStage):
    """Applies the routing rules and the escalation map to each request."""

    name = "routing"

    def __init__(
        self, rules: Sequence[CompiledRule], escalation: Mapping[str, str], classifier: ComplexityClassifier
    ) -> None:
        self._rules = tuple(rules)
        self._escalation = dict(escalation)
        self._classifier = classifier
        self.decisions: Counter[tuple[str, str]] = Counter()
        """Requests per (rule, chosen model); rule '-' when none matched."""

    async def on_request(self, exchange: Exchange) -> Reply | None:
        payload = exchange.payload
        requested = payload.get("model")
        if not isinstance(requested, str):
            return None
        chosen = requested
        escalate_to: str | None = None
        rule_name = "-"
        if self._rules:
            facts = RequestFacts(requested, payload, exchange.record, self._classifier)
            for rule in self._rules:
                why = rule.matches(facts)
                if why is None:
                    continue
                rule_name, chosen, escalate_to = rule.name, rule.model, rule.escalate_to
                exchange.record.route_reason = f"rule {rule.name}: {why} -> {chosen}"
                exchange.response_headers.append((ROUTE_HEADER, rule.name.encode()))
                break
        if chosen != requested:
            exchange.payload = {**payload, "model": chosen}
            exchange.body = None
        exchange.escalate_to = escalate_to or self._escalation.get(chosen)
        self.decisions[(rule_name, chosen)] += 1
        return None
