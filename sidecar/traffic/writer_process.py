"""The sidecar's handle on one traffic writer process: start it, send it batches, follow its reports.

Two one-way pipes: batches go down the data pipe; reports (counters and acknowledgements) come back
on the report pipe, read by a small thread here. A batch is kept (as its encoded bytes) from just
before it is sent until the child acknowledges it as stored or spooled; if the child dies first,
`take_unacknowledged` hands those batches back so the sidecar can spool them itself.
"""

from __future__ import annotations

import logging
import multiprocessing
import subprocess
import threading
from collections.abc import Callable

from core.children import OnParentDeath, popen_module
from sidecar.traffic.wire import CHILD_COUNTERS, Hello, decode_report, encode_hello

logger = logging.getLogger("tollgate.traffic")

CHILD_MODULE = "sidecar.traffic.child"
_PIPE_BYTES = 1 << 20  # room for a few batches, so a send rarely waits for the child to read


class WriterProcess:
    """One running child. Thread-safe: the sender thread sends, the report thread acknowledges."""

    def __init__(self, hello: Hello, on_exit: Callable[[], None]) -> None:
        data_reader, self._data = multiprocessing.Pipe(duplex=False)
        self._reports, report_writer = multiprocessing.Pipe(duplex=False)
        _enlarge(self._data.fileno())
        child_fds = (data_reader.fileno(), report_writer.fileno())
        try:
            # Never signalled or killed on our death: the data pipe's EOF ends it once everything it
            # received is stored or spooled.
            self._process = popen_module(
                CHILD_MODULE,
                list(map(str, child_fds)),
                on_death=OnParentDeath(signal=None, kill_after_s=None),
                pass_fds=child_fds,
                stdin=subprocess.DEVNULL,
            )
        except BaseException:
            self._data.close()
            self._reports.close()
            raise
        finally:
            # The child holds its ends now; closing ours makes its death visible to us as EOF, and ours to it.
            data_reader.close()
            report_writer.close()
        self._on_exit = on_exit
        self._lock = threading.Lock()
        self._unacknowledged: dict[int, tuple[bytes, int]] = {}
        self._in_flight = 0
        self._in_flight_bytes = 0
        self._counters: dict[str, int] = dict.fromkeys(CHILD_COUNTERS, 0)
        self._acknowledged_any = False
        self._gone = False
        self.ready = threading.Event()
        self.migrated = False  # it reported the database open at the latest schema
        self._reader = threading.Thread(
            target=self._read_reports, name="tollgate-traffic-reports", daemon=True
        )
        self._reader.start()
        try:
            self._data.send_bytes(encode_hello(hello))
        except OSError:
            pass  # it died at once: the report thread sees the EOF and the caller treats it as lost

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def alive(self) -> bool:
        """False once the child has closed its report pipe (exited, crashed or was killed)."""
        return not self._gone and self._process.poll() is None

    @property
    def in_flight(self) -> int:
        """Records sent and not yet acknowledged."""
        return self._in_flight

    @property
    def in_flight_bytes(self) -> int:
        """Bytes of the batches sent and not yet acknowledged."""
        return self._in_flight_bytes

    @property
    def acknowledged_any(self) -> bool:
        return self._acknowledged_any

    def counters(self) -> dict[str, int]:
        """The child's latest counters (written, spooled, replayed, failed)."""
        with self._lock:
            return dict(self._counters)

    def send(self, sequence: int, payload: bytes, records: int) -> None:
        """Send one encoded batch, tracked until acknowledged. Raises OSError when the child is gone.

        `send_bytes` releases the GIL while it writes; it blocks only when the pipe is full, which
        is the back-pressure that makes the sidecar's queue (and then its overflow) take the load.
        """
        if records:
            with self._lock:
                self._unacknowledged[sequence] = (payload, records)
                self._in_flight += records
                self._in_flight_bytes += len(payload)
        self._data.send_bytes(payload)

    def finish(self, timeout_s: float) -> int:
        """Close the data pipe (the child drains and exits) and wait; kill it after `timeout_s`."""
        self.close_data()
        try:
            status = self._process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            logger.error("traffic writer process %d still busy after %.0f s; killing it", self.pid, timeout_s)
            return self.kill()
        self._reader.join()
        return status

    def kill(self) -> int:
        """Kill the child (if still running) and reap it. Safe from any thread: a send in progress
        fails with BrokenPipeError instead of waiting for a reader that is gone."""
        if self._process.poll() is None:
            self._process.kill()
        status = self._process.wait()
        self._reader.join()
        return status

    def close_data(self) -> None:
        """Close the sending end (the child sees EOF). Only from the thread that sends."""
        try:
            self._data.close()
        except OSError:
            pass

    def take_unacknowledged(self) -> list[tuple[int, bytes, int]]:
        """The batches the child never acknowledged as (sequence, payload, records), oldest first; call
        after it has exited."""
        with self._lock:
            batches = [(sequence, payload, count) for sequence, (payload, count) in sorted(self._unacknowledged.items())]
            self._unacknowledged.clear()
            self._in_flight = 0
            self._in_flight_bytes = 0
        return batches

    def _read_reports(self) -> None:
        try:
            while True:
                report = decode_report(self._reports.recv_bytes())
                with self._lock:
                    self._counters = dict(zip(CHILD_COUNTERS, report.counters, strict=True))
                    if report.acknowledged is not None:
                        entry = self._unacknowledged.pop(report.acknowledged, None)
                        if entry is not None:
                            self._in_flight -= entry[1]
                            self._in_flight_bytes -= len(entry[0])
                            self._acknowledged_any = True
                if report.ready:
                    self.migrated = report.migrated
                    self.ready.set()
        except (EOFError, OSError):
            pass  # the child exited: its end of the pipe is closed
        except Exception:
            logger.exception("unreadable report from the traffic writer process; treating it as gone")
        finally:
            self._gone = True
            self._reports.close()
            self._on_exit()


def _enlarge(fd: int) -> None:
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    except (ImportError, AttributeError, OSError):
        pass  # not Linux, or above the system's limit: the default size only means more, shorter writes
