"""The traffic writer process: `python -m sidecar.traffic.child DATA_FD REPORT_FD`.

Started by `ProcessTrafficLog`, never by hand. It reads batches from the sidecar on DATA_FD, stores
each one with a `TrafficLog` (finalise, redact, insert; spool when the database refuses) and then
acknowledges it on REPORT_FD with its counters. A batch is acknowledged only once it is durable: when
neither the database nor the spool takes it (a full disk), its rows are held in memory and retried, and
its acknowledgement waits, so the sidecar still holds the batch and counts it against its memory buffer. The database, SQLAlchemy, the price book (and
litellm, when a model's price needs it) all live here, so none of that work competes with the
sidecar's event loop for its GIL.

It ignores SIGINT and SIGTERM: a Ctrl-C or a signal to the whole process group must not cut the
drain short. It exits when the sidecar closes the data pipe (or dies, which closes it too), after
storing or spooling everything it received.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from multiprocessing.connection import Connection

from sidecar.traffic.wire import Report, decode_batch, decode_hello, encode_report
from sidecar.traffic.writer import TrafficLog

logger = logging.getLogger("tollgate.traffic")

_IDLE_POLL_S = 0.5  # how often an idle child looks at the spool (TrafficLog decides when to replay)
_HOLDING_POLL_S = 0.05  # how often a child holding rows in memory looks whether a retry is due
_SHUTDOWN_RETRY_S = 15.0  # how long a closing child keeps retrying held rows (the sidecar waits up to 60 s)


class _Reporter:
    """Sends reports to the sidecar; once the sidecar is gone, keeps storing and stops reporting."""

    def __init__(self, connection: Connection, log: TrafficLog) -> None:
        self._connection: Connection | None = connection
        self._log = log
        self._last: tuple[int, ...] = ()

    def send(
        self, *, acknowledged: int | None = None, ready: bool = False, force: bool = False, migrated: bool = False
    ) -> None:
        stats = self._log.stats
        counters = (stats.written, stats.spooled, stats.replayed, stats.failed, stats.unwritable)
        if acknowledged is None and not ready and not force and counters == self._last:
            return
        self._last = counters
        if self._connection is None:
            return
        try:
            self._connection.send_bytes(encode_report(Report(counters, acknowledged, ready, migrated)))
        except OSError:
            self._connection = None  # the sidecar died; the data pipe's EOF will end the loop


def serve(data: Connection, reports: Connection) -> int:
    """Store batches until the data pipe closes; returns the exit status."""
    hello = decode_hello(data.recv_bytes())
    logging.basicConfig(
        level=hello.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    log = TrafficLog(hello.settings, migrate=not hello.migrated)  # a restarted writer skips Alembic
    reporter = _Reporter(reports, log)
    waiting: list[int] = []  # batches received and not yet durable (rows held in memory)
    try:
        log.warm_up()
        log.replay_if_due()
        reporter.send(ready=True, migrated=log.database_open)
        while True:
            if data.poll(_HOLDING_POLL_S if waiting else _IDLE_POLL_S):
                try:
                    payload = data.recv_bytes()
                except EOFError:
                    break
                batch = decode_batch(payload)
                waiting.append(batch.sequence)
                if log.write(batch.records):
                    _acknowledge(reporter, waiting)
            # Held rows are retried (when their backoff allows) even while batches keep coming.
            if log.unwritable and log.retry_held() and not log.unwritable:
                _acknowledge(reporter, waiting)
            if not data.poll(0):
                log.replay_if_due()  # only when nothing waits, so a replay never delays new batches
                reporter.send()
        _settle_held(log, reporter, waiting)
    finally:
        log.close()
        reporter.send(force=True)
        reports.close()
    return 0


def _settle_held(log: TrafficLog, reporter: _Reporter, waiting: list[int]) -> None:
    """At the end (the sidecar closed the pipe): keep retrying held rows for a while before giving up."""
    deadline = time.monotonic() + _SHUTDOWN_RETRY_S
    while log.unwritable and time.monotonic() < deadline:
        log.retry_held()
        time.sleep(_HOLDING_POLL_S)
    if not log.unwritable:
        _acknowledge(reporter, waiting)
    else:
        log.leave_held()  # unacknowledged: the sidecar spools its own copy of these batches


def _acknowledge(reporter: _Reporter, waiting: list[int]) -> None:
    for sequence in waiting:
        reporter.send(acknowledged=sequence)
    waiting.clear()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the child: wrap the inherited descriptors and serve."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(
            "usage: python -m sidecar.traffic.child DATA_FD REPORT_FD (started by the sidecar)",
            file=sys.stderr,
        )
        return 2
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    data = Connection(int(args[0]), writable=False)
    reports = Connection(int(args[1]), readable=False)
    try:
        return serve(data, reports)
    finally:
        data.close()


if __name__ == "__main__":
    sys.exit(main())
