"""Cost alerts: budget thresholds crossed, cost spikes and runaway keys, recorded once and sent to a webhook.

`evaluate_alerts` reads only the cost rollups and the budgets. Each alert has a `dedupe` key (what, who,
which window) that is unique in the table, so several sidecars evaluating at once record it once, and only
the one whose insert succeeded calls the webhook.

- budget: a key, user or feature spent a configured fraction (`alert_thresholds`) of a daily or monthly
  budget; 1.0 means spent, and the sidecar then refuses its requests with 429.
- spike: an hour's total cost is above `spike_factor` times the median of the `spike_window_hours` before it
  (missing hours count as 0) and at least `spike_min_usd`. With no history at all there is nothing to compare.
- runaway_key: a key's requests in an hour exceed `runaway_factor` times its trailing median and
  `runaway_min_requests` (a client stuck in a retry loop).
"""

from __future__ import annotations

import logging
import statistics
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, select

from core.budgets import EVERY, Limit, all_limits, spend_by_scope, window_of
from core.config.access import AccessSettings
from core.costs import hour_index, hourly_series
from core.tables.access import CostAlert
from core.tables.common import utc_now

log = logging.getLogger("tollgate.alerts")
_TABLE: sa.Table = CostAlert.__table__  # type: ignore[attr-defined]
_WEBHOOK_TIMEOUT_S = 5.0


def evaluate_alerts(
    engine: Engine, settings: AccessSettings, now: datetime | None = None, *, deliver: bool = True
) -> list[dict[str, Any]]:
    """Record the alerts that hold now and were not recorded before; returns the new ones (and posts them)."""
    now = now or utc_now()
    candidates = budget_alerts(engine, settings, now) + spike_alerts(engine, settings, now)
    if not candidates:
        return []
    with engine.begin() as connection:
        fresh = [alert for alert in candidates if _insert_once(connection, alert)]
    url = settings.webhook_url()
    if fresh and url and deliver:
        for alert in fresh:
            alert["delivered"] = post_webhook(url, alert)
        with engine.begin() as connection:
            for alert in fresh:
                connection.execute(
                    _TABLE.update().where(_TABLE.c.dedupe == alert["dedupe"]).values(delivered=alert["delivered"])
                )
    return fresh


def budget_alerts(engine: Engine, settings: AccessSettings, now: datetime) -> list[dict[str, Any]]:
    """One alert per budget, subject and threshold reached in the current window."""
    limits = all_limits(engine, settings.budgets)
    if not limits or not settings.alert_thresholds:
        return []
    spend = spend_by_scope(engine, {(limit.scope, limit.period) for limit in limits}, now)
    named = {(limit.scope, limit.subject, limit.period) for limit in limits if limit.subject != EVERY}
    alerts = []
    for limit in limits:
        spent_by = spend.get((limit.scope, limit.period), {})
        if limit.subject == EVERY:
            subjects = [s for s in spent_by if (limit.scope, s, limit.period) not in named]
        else:
            subjects = [limit.subject]
        for subject in subjects:
            alerts.extend(_threshold_alerts(limit, subject, spent_by.get(subject, 0.0), settings, now))
    return alerts


def _threshold_alerts(
    limit: Limit, subject: str, spent: float, settings: AccessSettings, now: datetime
) -> list[dict[str, Any]]:
    window = window_of(limit.period, now)
    alerts = []
    for threshold in settings.alert_thresholds:
        if spent < threshold * limit.limit_usd:
            break
        what = "spent" if threshold >= 1.0 else f"reached {threshold:.0%} of"
        alerts.append(_alert(
            "budget", limit.scope, subject,
            f"{limit.scope} {subject} {what} its {limit.period} budget of ${limit.limit_usd:g} "
            f"(${spent:.4f} in {window.label})",
            spent, threshold * limit.limit_usd,
            f"budget:{limit.scope}:{subject}:{limit.period}:{window.label}:{threshold:g}",
        ))
    return alerts


def spike_alerts(engine: Engine | Connection, settings: AccessSettings, now: datetime) -> list[dict[str, Any]]:
    """Cost spikes over all traffic and runaway keys, for the current hour and the one before it."""
    current = hour_index(now)
    window = settings.spike_window_hours
    first = current - 1 - window
    alerts: list[dict[str, Any]] = []
    costs = hourly_series(engine, "model", "cost_usd", first, current + 1)
    total: dict[int, float] = {}
    for hours in costs.values():
        for hour, amount in hours.items():
            total[hour] = total.get(hour, 0.0) + amount
    for hour in (current - 1, current):
        history = [total.get(h, 0.0) for h in range(hour - window, hour)]
        observed = total.get(hour, 0.0)
        if not any(history) or observed < settings.spike_min_usd:
            continue
        median = statistics.median(history)
        if observed > settings.spike_factor * median:
            alerts.append(_alert(
                "spike", "all", "",
                f"cost of the hour from {_hour_label(hour)} is ${observed:.4f}, "
                f"{_times(observed, median)} the trailing {window}-hour median (${median:.4f})",
                observed, settings.spike_factor * median, f"spike:all:{hour}",
            ))
    requests = hourly_series(engine, "key", "requests", first, current + 1)
    for key_id, hours in requests.items():
        if not key_id:
            continue
        for hour in (current - 1, current):
            observed = hours.get(hour, 0.0)
            if observed < settings.runaway_min_requests:
                continue
            median = statistics.median(hours.get(h, 0.0) for h in range(hour - window, hour))
            if observed > settings.runaway_factor * median:
                alerts.append(_alert(
                    "runaway_key", "key", key_id,
                    f"key {key_id} made {observed:.0f} requests in the hour from {_hour_label(hour)}, "
                    f"{_times(observed, median)} its trailing median ({median:g})",
                    observed, max(settings.runaway_factor * median, settings.runaway_min_requests),
                    f"runaway_key:{key_id}:{hour}",
                ))
    return alerts


def list_alerts(
    engine: Engine, *, since: datetime | None = None, kind: str | None = None, limit: int = 200
) -> list[CostAlert]:
    """Alerts, newest first."""
    query = select(CostAlert).order_by(_TABLE.c.created_at.desc(), _TABLE.c.id.desc())
    if since is not None:
        query = query.where(_TABLE.c.created_at >= since)
    if kind is not None:
        query = query.where(_TABLE.c.kind == kind)
    with Session(engine, expire_on_commit=False) as session:
        return list(session.exec(query.limit(limit)))


def describe_alert(alert: CostAlert) -> dict[str, Any]:
    """An alert as JSON-ready data."""
    return {
        "id": alert.id,
        "created_at": (alert.created_at if alert.created_at.tzinfo else alert.created_at.replace(tzinfo=UTC)).isoformat(),
        "kind": alert.kind,
        "scope": alert.scope,
        "subject": alert.subject,
        "message": alert.message,
        "value": alert.value,
        "threshold": alert.threshold,
        "delivered": alert.delivered,
    }


def post_webhook(url: str, alert: dict[str, Any]) -> str:
    """POST one alert as JSON; returns 'HTTP <status>' or 'error: <reason>' (never raises)."""
    document = {key: value for key, value in alert.items() if key != "delivered"}
    document["created_at"] = document["created_at"].isoformat()
    request = urllib.request.Request(
        url, data=orjson.dumps(document), headers={"content-type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=_WEBHOOK_TIMEOUT_S) as response:
            return f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        log.warning("alert webhook failed: %s", exc)
        return f"error: {str(getattr(exc, 'reason', exc))[:180]}"


def _insert_once(connection: Connection, alert: dict[str, Any]) -> bool:
    """Insert unless an alert with the same dedupe key exists; True when this call inserted it."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        statement: Any = postgresql_insert(_TABLE).on_conflict_do_nothing(index_elements=["dedupe"])
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(_TABLE).on_conflict_do_nothing(index_elements=["dedupe"])
    inserted = connection.execute(statement.returning(_TABLE.c.id), [alert]).first()
    if inserted is not None:
        alert["id"] = inserted[0]
    return inserted is not None


def _alert(
    kind: str, scope: str, subject: str, message: str, value: float, threshold: float, dedupe: str
) -> dict[str, Any]:
    return {
        "created_at": utc_now(), "kind": kind, "scope": scope, "subject": subject, "message": message[:500],
        "value": float(value), "threshold": float(threshold), "dedupe": dedupe[:300], "delivered": None,
    }


def _hour_label(hour: int) -> str:
    return datetime.fromtimestamp(hour * 3600, UTC).strftime("%Y-%m-%d %H:00 UTC")


def _times(observed: float, median: float) -> str:
    return f"{observed / median:.1f}x" if median > 0 else "far above"


def format_alerts(alerts: Sequence[CostAlert]) -> list[str]:
    """One line per alert, for the CLI."""
    return [f"{a.created_at:%Y-%m-%d %H:%M} {a.kind:<12} {a.message}" for a in alerts]
