"""Starting a sidecar for a pytest session when no sidecar URL is configured.

The harness never imports the sidecar: it runs `tollgate serve --port 0` as a child process, reads the URL
it prints once listening, waits for `/readyz`, and stops it with SIGTERM (which flushes its traffic log).
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

import httpx

from harness.errors import HarnessError

READY_PREFIX = "tollgate sidecar listening on "


class SidecarProcess:
    """A `tollgate serve` child process; `url` is its OpenAI base URL (ending in `/v1`)."""

    def __init__(self, config_file: str | None = None, *, env: dict[str, str] | None = None,
                 startup_timeout_s: float = 120.0, log_path: Path | None = None) -> None:
        self._config_file = config_file
        self._env = env
        self._timeout_s = startup_timeout_s
        self._log_path = log_path
        self._process: subprocess.Popen[str] | None = None
        self._tail: deque[str] = deque(maxlen=20)
        self.url = ""

    def start(self) -> SidecarProcess:
        command = [sys.executable, "-m", "core.cli", "serve", "--port", "0", "--log-level", "warning"]
        if self._config_file:
            command += ["--config", self._config_file]
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(self._env or {})},
            start_new_session=True,
        )
        self.url = self._read_url()
        self._wait_ready()
        return self

    def _read_url(self) -> str:
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._drain, args=(lines,), name="tollgate-sidecar-log", daemon=True).start()
        deadline = time.monotonic() + self._timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            if line.startswith(READY_PREFIX):
                return line[len(READY_PREFIX):].strip()
        self.stop()
        tail = " | ".join(list(self._tail)[-3:]) or "no output"
        raise HarnessError(f"the sidecar did not start ({tail})")

    def _drain(self, lines: queue.Queue[str | None]) -> None:
        process = self._process
        assert process is not None and process.stdout is not None
        log = self._log_path.open("a", encoding="utf-8") if self._log_path else None
        try:
            for line in process.stdout:
                self._tail.append(line.rstrip())
                lines.put(line)
                if log is not None:
                    log.write(line)
                    log.flush()
        finally:
            lines.put(None)
            if log is not None:
                log.close()

    def _wait_ready(self) -> None:
        ready_url = self.url.removesuffix("/v1") + "/readyz"
        deadline = time.monotonic() + self._timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(ready_url, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise HarnessError(f"the sidecar at {self.url} did not become ready in {self._timeout_s:g} s")

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout_s`; returns the exit status."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def __enter__(self) -> SidecarProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
