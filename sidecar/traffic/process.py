"""The traffic log with its writer in a child process, so storing never competes with the event loop.

The request path calls `submit`, which appends to a bounded deque. A sender thread takes batches off
it every `flush_interval_s` (or as soon as `batch_size` are queued), pickles each batch (about 2 µs a
record) and writes it to the child's pipe; the write releases the GIL. The child
(`sidecar.traffic.child`) finalises, redacts and inserts with the in-process `TrafficLog` as its
engine, spooling what the database refuses, and acknowledges every batch it has stored or spooled.

Nothing is lost on the way:
- overflow (queue full) or a submit after close: the record is finalised and spooled in this process;
- the child dies: every batch it had not acknowledged is kept and sent again, unchanged, to the next
  child (started with backoff). Nothing is finalised or spooled here, so a writer death costs this
  process no imports and no GIL time. Row ids are assigned here before sending, so a batch the child
  stored just before dying and that is sent again is still one row (inserts skip ids already stored);
- a full disk: the child holds what neither the database nor the spool takes and withholds its
  acknowledgement, so those batches stay here too. Records not yet durable (sent and unacknowledged,
  waiting to be sent again, or held here after this process's own spool failed) form the memory buffer,
  bounded by `traffic.memory_buffer_rows` / `memory_buffer_bytes`. While it is full `admits()` is False
  and the sidecar applies `traffic.when_full`: refuse new requests before the upstream, or serve them
  and count the records not logged (`shed`);
- shutdown: the sender sends what is left and closes the pipe; the child drains and exits. If it has
  not exited after `shutdown_timeout_s` it is killed and its unacknowledged batches spooled here.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Self

from core.settings import Settings
from sidecar.traffic.record import TRAFFIC_LOG_FULL, RawTraffic
from sidecar.traffic.stats import ProcessTrafficStats
from sidecar.traffic.wire import Hello, decode_batch, encode_batch
from sidecar.traffic.writer_process import WriterProcess

if TYPE_CHECKING:
    from sidecar.traffic.writer import TrafficLog

logger = logging.getLogger("tollgate.traffic")

_FIRST_RESTART_DELAY_S = 0.1  # a first death restarts at once; a crash loop still backs off to 30 s
_MAX_RESTART_DELAY_S = 30.0


class ProcessTrafficLog:
    """Same API as `TrafficLog` (`submit`, `start`, `close`, `aclose`, `stats`), writer in a child process."""

    def __init__(self, settings: Settings, *, shutdown_timeout_s: float = 60.0) -> None:
        self._settings = settings
        self._capacity = settings.traffic.queue_size
        self._batch_size = settings.traffic.batch_size
        self._flush_interval_s = settings.traffic.flush_interval_s
        self._shutdown_timeout_s = shutdown_timeout_s
        self._queue: deque[RawTraffic] = deque()
        self._wake = threading.Event()
        self._lock = threading.Lock()  # guards `_closed`, the counters and `_fallback`
        self._closed = False
        self._counts = {"submitted": 0, "sent": 0, "overflowed": 0, "writer_restarts": 0, "shed": 0, "refused": 0}
        self._retired = {"written": 0, "spooled": 0, "replayed": 0, "failed": 0}  # of children that exited
        self._buffer_rows = settings.traffic.memory_buffer_rows
        self._buffer_bytes = settings.traffic.memory_buffer_bytes
        self._shed_when_full = settings.traffic.when_full == "shed"
        self._resend: deque[tuple[int, bytes, int]] = deque()  # (sequence, payload, records) of a dead child
        self._was_full = False
        self._schema_ready = False  # a child opened the database at the latest schema; later ones skip Alembic
        self._thread: threading.Thread | None = None
        self._child: WriterProcess | None = None
        self._fallback: TrafficLog | None = None
        self._spooled_since_seal = False
        self._id_prefix = secrets.token_hex(8)
        self._sequence = 0
        self._numbered = 0
        self._restart_at = 0.0
        self._restart_delay_s = 0.0

    # -- the request path ---------------------------------------------------------------------------

    def submit(self, raw: RawTraffic) -> None:
        """Hand one request over. O(1), never blocks on the child or the database."""
        if raw.error_class == TRAFFIC_LOG_FULL or (self._shed_when_full and not self.admits()):
            self._count("refused" if raw.error_class == TRAFFIC_LOG_FULL else "shed", 1)
            return
        with self._lock:
            self._counts["submitted"] += 1
            accepted = not self._closed and len(self._queue) < self._capacity
            if accepted:
                self._queue.append(raw)
            elif not self._closed:
                self._counts["overflowed"] += 1
        if not accepted:
            self._spool_here([raw], seal=self._closed)
        elif len(self._queue) >= self._batch_size and not self._wake.is_set():
            self._wake.set()

    def admits(self) -> bool:
        """False while the records not yet durable fill the memory buffer (rows or bytes). O(1)."""
        rows, size = self._buffered()
        return rows < self._buffer_rows and size < self._buffer_bytes

    def _buffered(self) -> tuple[int, int]:
        """(rows, bytes) held in memory and not yet durable: in flight, waiting to be resent, held here."""
        child = self._child
        rows = size = 0
        if child is not None:
            rows, size = child.in_flight, child.in_flight_bytes
        for _sequence, payload, count in tuple(self._resend):
            rows += count
            size += len(payload)
        fallback = self._fallback
        if fallback is not None:
            rows += fallback.unwritable
            size += fallback.unwritable_bytes
        return rows, size

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the sender thread; it starts the writer process straight away."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tollgate-traffic-sender", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting, hand everything over, and wait until the child has stored it and exited."""
        with self._lock:
            self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(self._shutdown_timeout_s if timeout is None else timeout)
            if thread.is_alive():
                # Stuck writing to a child that stopped reading: killing it fails the write, and the
                # sender then spools the child's unacknowledged batches and the rest of the queue here.
                child = self._child
                if child is not None:
                    logger.error("traffic writer process %d stopped reading; killing it", child.pid)
                    child.kill()
                thread.join(timeout)
        if self._queue and (thread is None or not thread.is_alive()):
            self._spool_here(self._take_all())  # never started, or the sender died
        with self._lock:
            fallback = self._fallback
        if fallback is not None:
            fallback.close()

    async def aclose(self) -> None:
        """`close` without blocking the event loop."""
        await asyncio.to_thread(self.close)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def wait_ready(self, timeout: float) -> bool:
        """Wait until a writer process has opened the database and reported ready (for tests, tools)."""
        deadline = time.monotonic() + timeout
        while True:
            child = self._child
            if child is not None and child.ready.is_set():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    @property
    def writer_pid(self) -> int | None:
        """The pid of the current writer process, if one is running."""
        child = self._child
        return child.pid if child is not None and child.alive else None

    @property
    def stats(self) -> ProcessTrafficStats:
        """The sidecar's counters merged with the child's latest report."""
        with self._lock:  # the child is retired under this lock, so its counters are never taken twice
            child = self._child
            live = child.counters() if child is not None else {}
            in_flight = child.in_flight if child is not None else 0
            here = self._fallback.stats if self._fallback is not None else None
            counts = dict(self._counts)
            retired = dict(self._retired)
            queued = len(self._queue)
        spooled_here = here.spooled if here is not None else 0
        return ProcessTrafficStats(
            submitted=counts["submitted"],
            written=retired["written"] + live.get("written", 0),
            spooled=retired["spooled"] + live.get("spooled", 0) + spooled_here,
            replayed=retired["replayed"] + live.get("replayed", 0),
            failed=retired["failed"] + live.get("failed", 0) + (here.failed if here is not None else 0),
            queue_depth=queued + in_flight,
            unwritable=live.get("unwritable", 0) + (here.unwritable if here is not None else 0),
            shed=counts["shed"],
            refused=counts["refused"],
            sent=counts["sent"],
            in_flight=in_flight,
            overflowed=counts["overflowed"],
            spooled_in_parent=spooled_here,
            writer_restarts=counts["writer_restarts"],
        )

    # -- the sender thread --------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                stopping = self._closed
                if not stopping:
                    self._child_if_due()  # start (or restart) it before traffic arrives
                self._pump(stopping)
                self._watch_buffer()
                if self._spooled_since_seal:
                    self._spooled_since_seal = False
                    self._fallback_log().seal_spool()  # let the child replay what was spooled here
                if stopping and not self._queue:
                    break
                self._wake.wait(self._flush_interval_s)
                self._wake.clear()
        except Exception:
            logger.exception("traffic sender failed; spooling what is left in the sidecar")
        finally:
            self._finish()

    def _pump(self, stopping: bool) -> None:
        """Send what a dead child left, then everything queued, in batches; without a child, leave it
        queued (or spool it if stopping)."""
        while self._resend:
            child = self._child_if_due()
            if child is None:
                if stopping:
                    self._spool_here(_records_of(self._take_resend()), seal=True)
                return
            sequence, payload, count = self._resend[0]
            try:
                child.send(sequence, payload, count)
            except OSError:
                self._lose(child)
                continue
            self._resend.popleft()
        while self._queue:
            child = self._child_if_due()
            if child is None:
                if stopping:
                    self._spool_here(self._take_all())
                return
            records = [self._queue.popleft() for _ in range(min(self._batch_size, len(self._queue)))]
            self._sequence += 1
            payload = encode_batch(self._sequence, self._id_prefix, self._numbered, records)
            self._numbered += len(records)
            try:
                child.send(self._sequence, payload, len(records))
            except OSError:
                self._lose(child)  # the batch was tracked before sending: it is spooled with the others
                continue
            self._count("sent", len(records))

    def _child_if_due(self) -> WriterProcess | None:
        """The running child, starting one if none runs and the restart delay has passed."""
        child = self._child
        if child is not None:
            if child.alive:
                if child.acknowledged_any:
                    self._restart_delay_s = 0.0
                return child
            self._lose(child)
        if time.monotonic() < self._restart_at:
            return None
        try:
            level = logging.getLogger("tollgate.traffic").getEffectiveLevel()
            hello = Hello(self._settings, level, migrated=self._schema_ready)
            self._child = WriterProcess(hello, on_exit=self._wake.set)
        except OSError as exc:
            logger.error("cannot start the traffic writer process: %s", exc)
            self._delay_restart()
            return None
        return self._child

    def _lose(self, child: WriterProcess) -> None:
        """A child died or hung: reap it, keep what it had not acknowledged to send again, schedule a new one."""
        status = child.kill()
        child.close_data()
        batches = child.take_unacknowledged()
        # Keyed by sequence: a batch whose resend failed is also among the dead child's unacknowledged.
        merged = {batch[0]: batch for batch in (*self._resend, *batches)}
        with self._lock:
            self._resend = deque(merged[sequence] for sequence in sorted(merged))
        self._retire(child)
        self._count("writer_restarts", 1)
        self._delay_restart()
        logger.warning(
            "traffic writer process %d exited (status %s); %d unacknowledged records will be sent again; "
            "restarting in %.1f s",
            child.pid,
            status,
            sum(count for _sequence, _payload, count in batches),
            self._restart_delay_s,
        )

    def _finish(self) -> None:
        """Close the pipe, let the child drain and exit, and spool anything it did not acknowledge."""
        child = self._child
        if child is not None:
            status = child.finish(self._shutdown_timeout_s)
            batches = [*child.take_unacknowledged(), *self._take_resend()]
            self._retire(child)
            if batches:
                records = _records_of(batches)
                logger.warning(
                    "traffic writer process %d exited (status %s) with %d records unacknowledged; spooled here",
                    child.pid,
                    status,
                    len(records),
                )
                self._spool_here(records)
        if self._resend:
            self._spool_here(_records_of(self._take_resend()))
        if self._queue:
            self._spool_here(self._take_all())
        fallback = self._fallback
        if fallback is not None:
            fallback.seal_spool()

    def _watch_buffer(self) -> None:
        """Retry rows held here, and log when the memory buffer fills up or has room again."""
        fallback = self._fallback
        if fallback is not None and fallback.unwritable:
            fallback.retry_held()
        full = not self.admits()
        if full != self._was_full:
            self._was_full = full
            rows, size = self._buffered()
            if full:
                logger.error(
                    "traffic log memory buffer full (%d records, %d bytes not yet stored or spooled): %s",
                    rows,
                    size,
                    "serving requests unlogged" if self._shed_when_full else "refusing requests with 503 traffic_log_full",
                )
            else:
                logger.warning("traffic log memory buffer has room again (%d records held); accepting requests", rows)

    def _retire(self, child: WriterProcess) -> None:
        counters = child.counters()
        self._schema_ready = self._schema_ready or child.migrated
        with self._lock:
            for name in self._retired:
                self._retired[name] += counters.get(name, 0)
            if self._child is child:
                self._child = None

    def _delay_restart(self) -> None:
        self._restart_delay_s = min(
            max(self._restart_delay_s * 2, _FIRST_RESTART_DELAY_S), _MAX_RESTART_DELAY_S
        )
        self._restart_at = time.monotonic() + self._restart_delay_s

    # -- spooling in this process (overflow, dead child, shutdown) ----------------------------------

    def _take_resend(self) -> list[tuple[int, bytes, int]]:
        with self._lock:
            batches = list(self._resend)
            self._resend.clear()
        return batches

    def _take_all(self) -> list[RawTraffic]:
        with self._lock:
            records = list(self._queue)
            self._queue.clear()
        return records

    def _spool_here(self, records: list[RawTraffic], *, seal: bool = False) -> None:
        if not records:
            return
        fallback = self._fallback_log()
        fallback.spool(records)
        if seal:
            fallback.seal_spool()  # replayable at once (and after close nobody else would seal it)
        else:
            self._spooled_since_seal = True

    def _fallback_log(self) -> TrafficLog:
        """An in-process `TrafficLog`, never started, used only to finalise and spool.

        Built on first need, so the sidecar loads SQLAlchemy and the price book only when it spools.
        """
        from sidecar.traffic.writer import TrafficLog  # outside the lock: the first import takes a while

        with self._lock:
            if self._fallback is None:
                self._fallback = TrafficLog(self._settings)
            return self._fallback

    def _count(self, name: str, amount: int) -> None:
        with self._lock:
            self._counts[name] += amount


def _records_of(batches: list[tuple[int, bytes, int]]) -> list[RawTraffic]:
    """The records of encoded batches, with the row ids they were sent with."""
    return [raw for _sequence, payload, _count in batches for raw in decode_batch(payload).records]
