"""A single-line progress display on stderr for each load level (tqdm when installed, else a plain line)."""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol, TextIO

from harness.bench.timing import RequestRecord


class Progress(Protocol):
    """What the runner reports to: a level starts, requests finish, the level ends."""

    def start(self, label: str, total: int | None) -> None: ...

    def advance(self, record: RequestRecord) -> None: ...

    def finish(self) -> None: ...


class SilentProgress:
    """Shows nothing (tests, `--no-progress`, stderr not a terminal)."""

    def start(self, label: str, total: int | None) -> None:
        pass

    def advance(self, record: RequestRecord) -> None:
        pass

    def finish(self) -> None:
        pass


class LineProgress:
    """One line rewritten in place: level, requests done (of total), errors, requests/s."""

    def __init__(self, stream: TextIO | None = None, interval_s: float = 0.2) -> None:
        self._stream = stream or sys.stderr
        self._interval = interval_s
        self._bar: Any = None
        self._label = ""
        self._total: int | None = None
        self._done = self._errors = 0
        self._started = self._shown = 0.0

    def start(self, label: str, total: int | None) -> None:
        self._label, self._total, self._done, self._errors = label, total, 0, 0
        self._started = self._shown = time.perf_counter()
        try:
            from tqdm import tqdm
        except ImportError:
            self._bar = None
            return
        self._bar = tqdm(total=total, desc=label, unit="req", file=self._stream, leave=True,
                         mininterval=self._interval, dynamic_ncols=True)

    def advance(self, record: RequestRecord) -> None:
        self._done += 1
        if not record.ok:
            self._errors += 1
        if self._bar is not None:
            self._bar.update(1)
            if not record.ok:
                self._bar.set_postfix(errors=self._errors, refresh=False)
            return
        now = time.perf_counter()
        if now - self._shown >= self._interval:
            self._shown = now
            self._draw(now, end="")

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            return
        self._draw(time.perf_counter(), end="\n")

    def _draw(self, now: float, end: str) -> None:
        total = f"/{self._total}" if self._total is not None else ""
        rate = self._done / max(now - self._started, 1e-9)
        self._stream.write(f"\r{self._label}: {self._done}{total} requests, {self._errors} errors, "
                           f"{rate:.1f} req/s{end}")
        self._stream.flush()


def make_progress(enabled: bool | None, stream: TextIO | None = None) -> Progress:
    """A line display when `enabled`, or when it is None and the stream is a terminal; else silence."""
    target = stream or sys.stderr
    show = target.isatty() if enabled is None else enabled
    return LineProgress(target) if show else SilentProgress()
