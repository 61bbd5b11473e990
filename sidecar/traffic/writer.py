"""The traffic log: the request path submits, one writer thread finalises and stores in batches.

`submit` never touches the database or waits on it: it appends to a bounded in-memory queue (or, when
the queue is full or the log is closed, finalises the record and appends it to the on-disk spool).
The writer thread drains the queue in batches, inserts them with one executemany, and spools a batch
the database refuses. When the database is reachable again the spool is replayed, idempotently.
Rows the spool refuses too (a full disk) are held in memory (`HeldRows`) and retried with backoff; while
that buffer is full, `admits()` is False and the sidecar applies `traffic.when_full`.
Every record ends up counted as written, spooled or failed (logged with a reason): none vanish.

The same class is the engine of the writer process (`sidecar.traffic.child`), which runs its own loop
and calls `write`, `replay_if_due` and `close` instead of `start`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Self

from sqlalchemy.engine import Engine

from core.database import create_db_engine, open_database
from core.pricing import PriceBook
from core.settings import Settings
from sidecar.traffic.finaliser import RecordFinaliser
from sidecar.traffic.holding import HeldRows
from sidecar.traffic.record import TRAFFIC_LOG_FULL, RawTraffic, TrafficRow
from sidecar.traffic.spool import DEFAULT_MAX_FILE_BYTES, Spool
from sidecar.traffic.stats import TrafficStats
from sidecar.traffic.store import ROW_ERRORS, describe_error, insert_rows

logger = logging.getLogger("tollgate.traffic")

EngineFactory = Callable[[], Engine]

_FIRST_BACKOFF_S = 0.5
_MAX_BACKOFF_S = 30.0
_POSTGRES_CONNECT_TIMEOUT_S = 5
_CLOSE_RETRY_S = 10.0  # at close, how long rows held in memory are retried before they are reported lost


class TrafficLog:
    """A bounded queue in front of one writer thread that stores traffic rows in batches.

    `engine_factory` returns an engine the log owns (disposed on close); the default opens and
    migrates `settings.resolved_database_url`. It is called in the writer thread, and again with
    backoff while it fails, so a database that is down at start-up only means spooling for a while.
    """

    def __init__(
        self,
        settings: Settings,
        engine_factory: EngineFactory | None = None,
        *,
        prices: PriceBook | None = None,
        replay_interval_s: float = 5.0,
        spool_max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        migrate: bool = True,
    ) -> None:
        self._settings = settings
        self._engine_factory = engine_factory or _default_engine_factory(settings, migrate)
        self._prices = prices or PriceBook(settings)
        self._finaliser = RecordFinaliser(settings, self._prices)
        self._spool = Spool(settings.spool_dir, spool_max_file_bytes)
        self._capacity = settings.traffic.queue_size
        self._batch_size = settings.traffic.batch_size
        self._flush_interval_s = settings.traffic.flush_interval_s
        self._replay_interval_s = replay_interval_s
        self._queue: deque[RawTraffic] = deque()
        self._wake = threading.Event()
        self._lock = threading.Lock()  # guards `_closed` and the counters
        self._closed = False
        self._counts = {"submitted": 0, "written": 0, "spooled": 0, "replayed": 0, "failed": 0, "shed": 0, "refused": 0}
        self._held = HeldRows(settings.traffic.memory_buffer_rows, settings.traffic.memory_buffer_bytes)
        self._shed_when_full = settings.traffic.when_full == "shed"
        self._holding_logged = False
        self._thread: threading.Thread | None = None
        self._engine: Engine | None = None
        self._retry_at = 0.0
        self._backoff_s = 0.0
        self._replay_at = 0.0

    # -- the request path ---------------------------------------------------------------------------

    def submit(self, raw: RawTraffic) -> None:
        """Hand one request over. O(1), never blocks on the database or the writer."""
        if raw.error_class == TRAFFIC_LOG_FULL or (self._shed_when_full and self._held.full):
            self._count("refused" if raw.error_class == TRAFFIC_LOG_FULL else "shed", 1)
            return
        with self._lock:
            self._counts["submitted"] += 1
            accepted = not self._closed and len(self._queue) < self._capacity
            if accepted:
                self._queue.append(raw)
        if not accepted:
            self._spool_rows([self._finalise_or_none(raw)])
            if self._closed:
                self._spool.seal()  # nobody else will close the file after shutdown
        elif len(self._queue) >= self._batch_size and not self._wake.is_set():
            self._wake.set()

    # -- driven by a caller's own loop (the writer process) ------------------------------------------

    def write(self, raws: Sequence[RawTraffic]) -> bool:
        """Finalise and store `raws` now, in the calling thread: inserted, else spooled, else held in memory.

        Returns True when nothing is held afterwards, i.e. these rows (and all before them) are durable.
        """
        self._count("submitted", len(raws))
        for start in range(0, len(raws), self._batch_size):
            chunk = raws[start : start + self._batch_size]
            rows = [row for row in map(self._finalise_or_none, chunk) if row is not None]
            if rows:
                self._store(rows)
        return not self._held

    def admits(self) -> bool:
        """False while the memory buffer of unwritable rows is full (the sidecar then applies `when_full`)."""
        return not self._held.full

    @property
    def database_open(self) -> bool:
        """True while the log holds an open engine (opened and, unless told otherwise, migrated)."""
        return self._engine is not None

    @property
    def unwritable(self) -> int:
        """Rows held in memory because neither the database nor the spool would take them."""
        return len(self._held)

    @property
    def unwritable_bytes(self) -> int:
        """About how many bytes the held rows take."""
        return self._held.bytes

    def retry_held(self) -> int:
        """Retry the held rows when due (database, then spool); returns how many became durable."""
        moved = self._held.retry(self._store_held, self._batch_size)
        if moved:
            logger.warning(
                "traffic log: %d rows held in memory are now stored or spooled (%d still held)", moved, len(self._held)
            )
            self._holding_logged = bool(self._held)
        return moved

    def leave_held(self) -> int:
        """Forget the held rows without counting them lost: the caller (the writer process, whose sidecar
        still holds these records unacknowledged) leaves them to someone else. Returns how many."""
        count = self._held.drop_all()
        if count:
            logger.warning("%d traffic rows still unwritable; left unacknowledged for the sidecar to spool", count)
        return count

    def spool(self, raws: Sequence[RawTraffic]) -> None:
        """Finalise `raws` and append them to the spool without touching the database."""
        self._count("submitted", len(raws))
        for start in range(0, len(raws), self._batch_size):
            if self._held:  # the spool refused a chunk: keep order, hold the rest for the retries
                self._held.hold([row for row in map(self._finalise_or_none, raws[start:]) if row is not None])
                return
            self._spool_rows([self._finalise_or_none(raw) for raw in raws[start : start + self._batch_size]])

    def seal_spool(self) -> None:
        """Close the spool file being appended to, so a replay (in any process) can take its rows."""
        self._spool.seal()

    def warm_up(self) -> None:
        """Open (and migrate) the database and price the configured models now, not at the first batch.

        Call it before `start` or from the thread that drives `write`; a failure only starts the backoff.
        """
        self._engine_if_due()
        for model in self._settings.models:
            self._prices.price(model)

    def replay_if_due(self) -> None:
        """Replay sealed spool files into the database when the replay interval has passed."""
        self._replay_if_due()

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the writer thread (it first replays any spool left by an earlier run)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tollgate-traffic-writer", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting, store or spool everything queued, and join the writer thread."""
        with self._lock:
            self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.error("traffic writer still busy after %.1f s; queued rows stay in memory", timeout)
                return
        if self._queue:
            # Never started, or its loop died: nothing else will store what is still queued.
            self._drain()
        self._release_held()
        self._dispose()  # the writer thread disposes its own; this covers `write` callers and no thread
        self._spool.close()

    async def aclose(self) -> None:
        """`close` without blocking the event loop."""
        await asyncio.to_thread(self.close)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def stats(self) -> TrafficStats:
        """A snapshot of the counters."""
        with self._lock:
            return TrafficStats(queue_depth=len(self._queue), unwritable=len(self._held), **self._counts)

    # -- the writer thread --------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._replay_if_due()
            while True:
                self._wake.wait(self._flush_interval_s)
                self._wake.clear()
                stopping = self._closed
                self._drain()
                self.retry_held()
                self._replay_if_due()
                if stopping and not self._queue:
                    break
        except Exception:
            logger.exception("traffic writer loop failed; spooling what is left")
            self._retry_at = float("inf")  # the database path is suspect: everything else goes to disk
            self._drain()
        finally:
            self._dispose()

    def _drain(self) -> None:
        while self._queue:
            raws = [self._queue.popleft() for _ in range(min(self._batch_size, len(self._queue)))]
            rows = [row for row in map(self._finalise_or_none, raws) if row is not None]
            if rows:
                self._store(rows)

    def _store(self, rows: list[TrafficRow]) -> None:
        if self._held:
            self._held.hold(rows)  # keep order; the next retry takes them with the rest
            return
        engine = self._engine_if_due()
        if engine is None:
            self._spool_rows(rows)
            return
        try:
            with engine.begin() as connection:
                insert_rows(connection, rows)
        except Exception as exc:  # noqa: BLE001  (any database failure: the rows go to disk instead)
            logger.warning("traffic batch of %d spooled: %s", len(rows), describe_error(exc))
            self._spool_rows(rows)
            if not isinstance(exc, ROW_ERRORS):
                self._mark_down()
            return
        self._count("written", len(rows))
        self._mark_up()

    def _replay_if_due(self) -> None:
        if time.monotonic() < self._replay_at:
            return
        self._replay_at = time.monotonic() + self._replay_interval_s
        if not self._spool.pending():
            return
        engine = self._engine_if_due()
        if engine is None:
            return
        self._spool.seal()
        try:
            result = self._spool.replay(engine, self._batch_size)
        except Exception as exc:  # noqa: BLE001  (database or disk trouble: files stay for the next try)
            logger.warning("spool replay postponed: %s", describe_error(exc))
            self._mark_down()
            return
        if result.files:
            logger.info("replayed %d spooled rows from %d files", result.replayed, result.files)
        self._count("replayed", result.replayed)
        self._count("failed", result.rejected)

    def _engine_if_due(self) -> Engine | None:
        """The engine, opening it if needed; None while backing off after a failure."""
        if time.monotonic() < self._retry_at:
            return None
        if self._engine is None:
            try:
                self._engine = self._engine_factory()
            except Exception as exc:  # noqa: BLE001  (unreachable, bad URL, migration failure...)
                logger.warning("traffic database unavailable, spooling: %s", describe_error(exc))
                self._mark_down()
                return None
            self._replay_at = 0.0  # freshly connected: replay whatever piled up
        return self._engine

    def _mark_down(self) -> None:
        self._backoff_s = min(max(self._backoff_s * 2, _FIRST_BACKOFF_S), _MAX_BACKOFF_S)
        self._retry_at = time.monotonic() + self._backoff_s

    def _mark_up(self) -> None:
        if self._backoff_s:
            self._backoff_s = 0.0
            self._replay_at = 0.0  # the database is back: replay now rather than at the next interval

    def _release_held(self) -> None:
        """At close: keep retrying held rows for a while; what still cannot be written is reported as lost."""
        deadline = time.monotonic() + _CLOSE_RETRY_S
        while self._held and time.monotonic() < deadline:
            self._held.retry_at_once()
            if not self.retry_held():
                time.sleep(0.25)
        lost = self._held.drop_all()
        if lost:
            logger.error("%d traffic rows lost at shutdown: neither the database nor the spool would take them", lost)
            self._count("failed", lost)

    def _dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- shared by both paths -----------------------------------------------------------------------

    def _finalise_or_none(self, raw: RawTraffic) -> TrafficRow | None:
        try:
            return self._finaliser.finalise(raw)
        except Exception:
            logger.exception("traffic record %s could not be finalised and is dropped", raw.request_id)
            self._count("failed", 1)
            return None

    def _spool_rows(self, rows: Sequence[TrafficRow | None]) -> None:
        kept = [row for row in rows if row is not None]
        if not kept:
            return
        try:
            self._spool.append(kept)
        except OSError as exc:
            self._held.hold(kept)
            if not self._holding_logged:
                self._holding_logged = True
                logger.error(
                    "traffic log cannot write the spool in %s (%s): holding rows in memory (%d now) and retrying",
                    self._spool.directory,
                    exc,
                    len(self._held),
                )
            return
        self._count("spooled", len(kept))

    def _store_held(self, rows: list[TrafficRow]) -> bool:
        """One retry of held rows: the database if it is usable, else the spool. True when they are durable."""
        engine = self._engine_if_due()
        if engine is not None:
            try:
                with engine.begin() as connection:
                    for start in range(0, len(rows), self._batch_size):
                        insert_rows(connection, rows[start : start + self._batch_size])
            except Exception as exc:  # noqa: BLE001  (any database failure: try the spool)
                logger.debug("held rows not stored: %s", describe_error(exc))
                if not isinstance(exc, ROW_ERRORS):
                    self._mark_down()
            else:
                self._count("written", len(rows))
                self._mark_up()
                return True
        try:
            self._spool.append(rows)
        except OSError:
            return False
        self._count("spooled", len(rows))
        return True

    def _count(self, name: str, amount: int) -> None:
        with self._lock:
            self._counts[name] += amount


def _default_engine_factory(settings: Settings, migrate: bool = True) -> EngineFactory:
    url = settings.resolved_database_url
    opener = open_database if migrate else create_db_engine

    def open_engine() -> Engine:
        if url.startswith("postgresql"):
            # Bounded, so a black-holed host delays spooling by seconds, not minutes.
            return opener(url, connect_args={"connect_timeout": _POSTGRES_CONNECT_TIMEOUT_S})
        return opener(url)

    return open_engine
