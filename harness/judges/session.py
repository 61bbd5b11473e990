"""The judges of a pytest session: bound lazily to the session's sidecar and database by the plugin.

Judge calls go through the session's call pool, behind the model calls it has queued: with
`--tollgate-concurrency=1` the embedded model then answers one request at a time, judge or not, which is
what keeps its verdicts (and the cache) reproducible from run to run.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from harness.judges.gate import AgreementCheck
from harness.judges.model import JudgeFailure, Transport
from harness.judges.runtime import JudgeRuntime, bind_runtime_factory, close_runtime


class SessionJudges:
    """Binds the runtime factory, watches recorded rows for the agreement gate, and reports judge calls."""

    def __init__(self) -> None:
        self.agreement = AgreementCheck()
        self.counts: dict[str, int] | None = None

    def bind(self, session: Any) -> None:
        """Judge scorers in this process judge through the session's sidecar (or `judges.base_url`)."""

        def build() -> JudgeRuntime:
            from core.database import open_database

            settings = session.settings
            base_url = settings.judges.base_url or session.sidecar_url()
            transport = None if settings.judges.base_url else pool_transport(session)
            return JudgeRuntime(settings.judges, base_url, default_model=settings.embedded.model_name,
                                engine_factory=lambda: open_database(settings.resolved_database_url),
                                transport=transport)

        bind_runtime_factory(build)

    def close(self) -> None:
        self.counts = close_runtime()

    def summary_line(self) -> str | None:
        if not self.counts:
            return None
        return (f"tollgate judges: {self.counts['calls']} judge calls, {self.counts['cached']} verdicts from the "
                f"cache, {self.counts['failed']} failed (unscored)")


def pool_transport(session: Any) -> Transport:
    """Judge calls submitted to the session's call pool (its concurrency limit covers them too)."""
    numbers = itertools.count()

    async def send(body: dict[str, Any], headers: dict[str, str]) -> str:
        pool = session.pool()
        key = f"tollgate-judge-{next(numbers)}"
        tags = {name: value for name, value in headers.items() if name.lower() != "content-type"}
        result = await asyncio.wrap_future(pool.submit(key, body, tags=tags))
        pool.take(key)  # already done: this only drops the pool's reference
        if result.error is not None:
            raise JudgeFailure(f"judge {body.get('model')}: {result.error}")
        return str(result.text)

    return send
