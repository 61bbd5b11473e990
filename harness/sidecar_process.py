"""Starting a sidecar for a pytest session when no sidecar URL is configured.

The harness never imports the sidecar: it runs `tollgate serve --port 0` as a separate process whose output
goes to a log file, reads the URL the sidecar prints once listening, waits for `/readyz`, and stops it with
SIGTERM (which flushes its traffic log). Under pytest-xdist the first worker that needs a sidecar starts it
under a file lock and the others reuse it; the controller stops it at the end of the session.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import orjson

from core.children import OnParentDeath, popen_module
from harness.errors import HarnessError

READY_PREFIX = "tollgate sidecar listening on "
# How long a sidecar whose session died gets to flush its traffic log before it is killed.
SHUTDOWN_GRACE_S = 60.0
# Sidecars started by this process, kept so they are reaped (not left as zombies or "still running").
_STARTED: dict[int, subprocess.Popen[bytes]] = {}


class SidecarProcess:
    """A `tollgate serve` process; `url` is its OpenAI base URL (ending in `/v1`)."""

    def __init__(self, log_path: Path, *, config_file: str | None = None, env: dict[str, str] | None = None,
                 startup_timeout_s: float = 180.0, owner_pid: int | None = None) -> None:
        self.log_path = log_path
        self._config_file = config_file
        self._env = env
        self._timeout_s = startup_timeout_s
        # It dies with this process, or with `owner_pid` (the xdist controller that will stop it).
        self._on_death = OnParentDeath(kill_after_s=SHUTDOWN_GRACE_S, owner_pid=owner_pid)
        self.pid: int | None = None
        self.url = ""

    def start(self) -> SidecarProcess:
        arguments = ["serve", "--port", "0", "--log-level", "warning"]
        if self._config_file:
            arguments += ["--config", self._config_file]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            process = popen_module(
                "core.cli", arguments, on_death=self._on_death,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **(self._env or {})}, start_new_session=True,
            )
        self.pid = process.pid
        _STARTED[process.pid] = process
        self.url = self._read_url(process, offset)
        self._wait_ready()
        return self

    def _read_url(self, process: subprocess.Popen[bytes], offset: int) -> str:
        deadline = time.monotonic() + self._timeout_s
        while time.monotonic() < deadline:
            text = self._log_text(offset)
            for line in text.splitlines():
                if line.startswith(READY_PREFIX):
                    return line[len(READY_PREFIX):].strip()
            if process.poll() is not None:
                raise HarnessError(f"the sidecar exited during start-up: {_last_line(text)} (log: {self.log_path})")
            time.sleep(0.05)
        self.stop()
        raise HarnessError(f"the sidecar did not start within {self._timeout_s:g} s (log: {self.log_path})")

    def _log_text(self, offset: int) -> str:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode("utf-8", "replace")

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

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.pid is not None:
            stop_pid(self.pid, timeout_s)
            self.pid = None


def stop_pid(pid: int, timeout_s: float = 30.0) -> None:
    """SIGTERM `pid` and wait for it to go; SIGKILL after `timeout_s`."""
    process = _STARTED.pop(pid, None)
    if process is not None:
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            finished, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            finished = 0 if _alive(pid) else pid
        if finished == pid or not _alive(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def shared_sidecar(
    run_dir: Path, session_id: str, *, config_file: str | None = None, owner_pid: int | None = None
) -> str:
    """The URL of this session's sidecar, starting it if no process of the session has yet.

    `owner_pid` is the process whose end stops it (the xdist controller); by default this one.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    info_path = run_dir / f"sidecar-{session_id}.json"
    with (run_dir / f"sidecar-{session_id}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if info_path.exists():
            return str(orjson.loads(info_path.read_bytes())["url"])
        process = SidecarProcess(
            run_dir.parent / "logs" / "sidecar.log", config_file=config_file, owner_pid=owner_pid
        ).start()
        info_path.write_bytes(orjson.dumps({"url": process.url, "pid": process.pid}))
        return process.url


def stop_shared_sidecar(run_dir: Path, session_id: str) -> None:
    """Stop the sidecar a session started (if any) and forget it."""
    info_path = run_dir / f"sidecar-{session_id}.json"
    if not info_path.exists():
        return
    info = orjson.loads(info_path.read_bytes())
    stop_pid(int(info["pid"]))
    info_path.unlink(missing_ok=True)
    (run_dir / f"sidecar-{session_id}.lock").unlink(missing_ok=True)
