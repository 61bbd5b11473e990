"""The release state one sidecar serves from, kept fresh in the background.

The request path only reads `ReleaseState.snapshot` and the parsed prompt versions: a dictionary lookup. A
background task polls the revision counter every `releases.refresh_interval_s` (one indexed row) and reloads
the snapshot in a thread when it moved; with Redis configured it also listens on the release channel and
reloads as soon as a change is published. A database outage keeps the last snapshot serving.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from core.config.releases import ReleaseSettings
from core.prompts import PromptError, PromptFile
from core.prompts.prompt_file import parse_prompt
from core.releases.notify import CHANNEL
from core.releases.snapshot import ReleaseSnapshot, load_snapshot, read_revision

log = logging.getLogger("tollgate.sidecar.releases")
RECENT_ARMS = 50_000


class ReleaseState:
    """The current `ReleaseSnapshot`, its prompt versions parsed, and the arms of recent requests."""

    def __init__(self, engine: Engine, settings: ReleaseSettings, redis_url: str | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.redis_url = redis_url
        self.snapshot = ReleaseSnapshot.empty()
        self.prompts: dict[tuple[str, str], PromptFile] = {}
        self.reloads = 0
        self._recent: OrderedDict[str, tuple[str | None, str]] = OrderedDict()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # -- request path ------------------------------------------------------------------------------------

    def prompt(self, name: str, version: str) -> PromptFile | None:
        return self.prompts.get((name, version))

    def remember(self, request_id: str, experiment: str | None, variant: str) -> None:
        """Keep which arm served a request, so feedback about it can name the arm (bounded, oldest dropped)."""
        recent = self._recent
        recent[request_id] = (experiment, variant)
        if len(recent) > RECENT_ARMS:
            recent.popitem(last=False)

    def arm_of(self, request_id: str) -> tuple[str | None, str] | None:
        return self._recent.get(request_id)

    # -- loading -----------------------------------------------------------------------------------------

    def load_now(self) -> None:
        """Load synchronously (start-up only)."""
        self._install(*_load(self.engine, self.prompts))

    async def refresh(self) -> bool:
        """Reload when the revision moved; True when a new snapshot was installed."""
        revision = await asyncio.to_thread(read_revision, self.engine)
        if revision == self.snapshot.revision:
            return False
        self._install(*await asyncio.to_thread(_load, self.engine, self.prompts))
        return True

    def refresh_soon(self) -> None:
        """Reload now rather than at the next poll (after a change made through this sidecar)."""
        self._wake.set()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._poll()))
        if self.redis_url:
            self._tasks.append(loop.create_task(self._listen(self.redis_url)))

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def _install(self, snapshot: ReleaseSnapshot, prompts: dict[tuple[str, str], PromptFile]) -> None:
        # One reference swap each: a request sees the old state or the new one, never a mix that matters.
        self.prompts = prompts
        self.snapshot = snapshot
        self.reloads += 1
        log.info("release state at revision %d (%d subjects)", snapshot.revision, len(snapshot.subjects))

    async def _poll(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.settings.refresh_interval_s)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.refresh()
            except Exception as exc:  # noqa: BLE001 - boundary: the database may be away; keep serving the last state
                log.warning("could not refresh the release state: %s", exc)

    async def _listen(self, url: str) -> None:
        import redis.asyncio as redis

        while True:
            client = redis.Redis.from_url(url)
            try:
                pubsub = client.pubsub()
                await pubsub.subscribe(CHANNEL)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - boundary: Redis may be away; polling still runs
                log.warning("release channel on Redis unavailable (%s); retrying in 5 s", exc)
                await asyncio.sleep(5.0)
            finally:
                await client.aclose()


def _load(engine: Engine, known: dict[tuple[str, str], PromptFile]) -> tuple[ReleaseSnapshot, dict[tuple[str, str], PromptFile]]:
    """The snapshot and every prompt version it names, parsed (reusing the versions parsed before)."""
    snapshot = load_snapshot(engine)
    prompts: dict[tuple[str, str], PromptFile] = {}
    for (name, version), source in snapshot.sources.items():
        parsed: Any = known.get((name, version))
        if parsed is None:
            try:
                parsed = parse_prompt(source, Path(f"{name}.prompt"), version)
            except PromptError as exc:
                log.error("stored prompt %s@%s does not parse: %s", name, version, exc)
                continue
        prompts[(name, version)] = parsed
    return snapshot, prompts
