"""`EmbeddedModel`: starts the local llama.cpp server in a child process, restarts it, stops it.

The server runs out of process so that a crash inside llama.cpp costs one restart, not the sidecar.
Its port is picked once and kept across restarts, so `base_url` stays valid for the upstream client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import aiohttp

from core.children import OnParentDeath, create_module_subprocess
from core.settings import EmbeddedSettings
from sidecar.embedded.errors import EmbeddedModelError
from sidecar.embedded.model_file import locate_model_file, require_runtime
from sidecar.embedded.server_main import LOOPBACK

logger = logging.getLogger(__name__)

SERVER_MODULE = "sidecar.embedded.server_main"
LOG_FILE_NAME = "embedded.log"
# Kept once per supervisor start: the previous file is renamed to `.1` past this size.
LOG_ROTATE_BYTES = 8 * 1024 * 1024
LOG_TAIL_BYTES = 4096
HEALTH_POLL_S = 0.1
# A child that ran this long before dying counts as a fresh failure, not a crash loop.
STABLE_RUN_S = 60.0


class EmbeddedModel:
    """Supervises one llama.cpp server child serving the embedded GGUF model on loopback.

    Use `async with EmbeddedModel(settings.embedded, settings.data_dir) as model:` or call
    `start()` and `stop()` around the sidecar's lifetime. `base_url` is the OpenAI-style root
    (`http://127.0.0.1:PORT/v1`) to give to an upstream client.
    """

    def __init__(
        self,
        settings: EmbeddedSettings,
        data_dir: Path,
        *,
        model_path: Path | None = None,
        verbosity: int = 1,
        stop_grace_s: float = 10.0,
        restart_backoff_s: float = 0.5,
        max_restart_backoff_s: float = 30.0,
    ) -> None:
        self._settings = settings
        self._model_path = model_path
        self._log_path = Path(data_dir) / "logs" / LOG_FILE_NAME
        self._verbosity = verbosity
        self._stop_grace_s = stop_grace_s
        self._restart_backoff_s = restart_backoff_s
        self._max_restart_backoff_s = max_restart_backoff_s
        self._port: int | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._spawned_at = 0.0
        self._log_offset = 0
        self._restarts = 0
        self._stopping = False
        self._ready = asyncio.Event()
        self._watch_task: asyncio.Task[None] | None = None

    @property
    def model_name(self) -> str:
        """The name the server reports in responses and in `/v1/models`."""
        return self._settings.model_name

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible root URL, e.g. `http://127.0.0.1:40123/v1`."""
        return f"{self.root_url}/v1"

    @property
    def root_url(self) -> str:
        """The server's root URL (for `/health` and `/metrics`)."""
        if self._port is None:
            raise EmbeddedModelError("the embedded model has not been started")
        return f"http://{LOOPBACK}:{self._port}"

    @property
    def pid(self) -> int | None:
        """The current child's process id, or None before start and after stop."""
        if self._process is None or self._process.returncode is not None:
            return None
        return self._process.pid

    @property
    def restarts(self) -> int:
        """How many times the child has been respawned after dying."""
        return self._restarts

    @property
    def is_ready(self) -> bool:
        """True while a child is running and has answered its health check."""
        return self._ready.is_set()

    @property
    def log_path(self) -> Path:
        """Where the child's stdout and stderr (llama.cpp's log) are appended."""
        return self._log_path

    async def start(self) -> None:
        """Spawn the child and return once it answers `/health`; raise `EmbeddedModelError` otherwise."""
        if self._watch_task is not None:
            raise EmbeddedModelError("the embedded model is already started")
        require_runtime()
        if self._model_path is None:
            self._model_path = locate_model_file()
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        _rotate_log(self._log_path)
        self._port = _pick_free_port()
        self._stopping = False
        await self._spawn()
        self._watch_task = asyncio.create_task(self._watch(), name="tollgate-embedded-watch")

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until a (re)started child is healthy; raise `EmbeddedModelError` after `timeout` s."""
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError as exc:
            raise EmbeddedModelError(
                f"the embedded model did not become ready within {timeout} s{self._describe_log()}"
            ) from exc

    async def stop(self) -> None:
        """Stop supervising and terminate the child (SIGTERM, then SIGKILL after the grace period)."""
        self._stopping = True
        task, self._watch_task = self._watch_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        process, self._process = self._process, None
        self._ready.clear()
        if process is not None:
            await self._terminate(process)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def _arguments(self) -> list[str]:
        settings = self._settings
        return [
            "--model", str(self._model_path),
            "--port", str(self._port),
            "--threads", str(settings.threads),
            "--parallel", str(settings.parallel),
            "--context", str(settings.context),
            "--alias", settings.model_name,
            "--parent-pid", str(os.getpid()),
            "--verbosity", str(self._verbosity),
        ]  # fmt: skip

    async def _spawn(self) -> None:
        """Start one child and wait for its health check; on failure it is killed and an error raised."""
        with self._log_path.open("ab") as log:
            self._log_offset = log.tell()
            try:
                process = await create_module_subprocess(
                    SERVER_MODULE,
                    self._arguments(),
                    on_death=OnParentDeath(kill_after_s=self._stop_grace_s),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                    # Its own session: a Ctrl-C meant for the sidecar must not kill the child before
                    # stop() runs (the watch task would restart it); core.children ends it if we die.
                    start_new_session=True,
                )
            except OSError as exc:
                raise EmbeddedModelError(f"cannot start the embedded model: {exc}") from exc
        self._process = process
        self._spawned_at = time.monotonic()
        logger.info("embedded model starting (pid %d) on %s", process.pid, self.root_url)
        try:
            await self._await_health(process)
        except BaseException:
            await self._terminate(process)
            raise
        self._ready.set()
        logger.info("embedded model ready (pid %d) at %s", process.pid, self.base_url)

    async def _await_health(self, process: asyncio.subprocess.Process) -> None:
        timeout_s = self._settings.startup_timeout_s
        deadline = time.monotonic() + timeout_s
        url = f"{self.root_url}/health"
        probe_timeout = aiohttp.ClientTimeout(total=2.0)
        async with aiohttp.ClientSession(timeout=probe_timeout) as session:
            while True:
                if process.returncode is not None:
                    raise EmbeddedModelError(
                        f"the embedded model exited during start-up ({_describe_exit(process.returncode)})"
                        f"{self._describe_log()}"
                    )
                if await _is_healthy(session, url):
                    return
                if time.monotonic() >= deadline:
                    raise EmbeddedModelError(
                        f"the embedded model did not answer {url} within {timeout_s} s{self._describe_log()}"
                    )
                await asyncio.sleep(HEALTH_POLL_S)

    async def _watch(self) -> None:
        """Restart the child whenever it dies, with exponential backoff against crash loops."""
        failures = 0
        while not self._stopping:
            process = self._process
            assert process is not None
            returncode = await process.wait()
            self._ready.clear()
            if self._stopping:
                return
            ran_for = time.monotonic() - self._spawned_at
            if ran_for >= STABLE_RUN_S:
                failures = 0
            delay = min(self._max_restart_backoff_s, self._restart_backoff_s * 2**failures)
            logger.warning(
                "embedded model (pid %d) exited with %s after %.1f s; restarting in %.1f s%s",
                process.pid, _describe_exit(returncode), ran_for, delay, self._describe_log(),
            )  # fmt: skip
            await asyncio.sleep(delay)
            failures += 1
            self._restarts += 1
            try:
                await self._spawn()
            except EmbeddedModelError as exc:
                # The dead process stays current, so the next wait() returns at once and backs off.
                logger.error("embedded model restart %d failed: %s", self._restarts, exc)

    async def _terminate(self, process: asyncio.subprocess.Process) -> None:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), self._stop_grace_s)
                return
            except TimeoutError:
                logger.warning(
                    "embedded model (pid %d) ignored SIGTERM for %.1f s; killing it",
                    process.pid, self._stop_grace_s,
                )  # fmt: skip
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        await process.wait()

    def _describe_log(self) -> str:
        tail = _read_tail(self._log_path, self._log_offset)
        if not tail:
            return f" (log: {self._log_path})"
        return f"; last lines of {self._log_path}:\n{tail}"


async def _is_healthy(session: aiohttp.ClientSession, url: str) -> bool:
    # 503 means "loading model"; a refused connection means the socket is not bound yet.
    try:
        async with session.get(url) as response:
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


def _pick_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


def _rotate_log(path: Path) -> None:
    if path.is_file() and path.stat().st_size > LOG_ROTATE_BYTES:
        path.replace(path.with_name(path.name + ".1"))


def _read_tail(path: Path, offset: int, max_bytes: int = LOG_TAIL_BYTES, max_lines: int = 20) -> str:
    """The end of what the current child wrote to the log (from `offset`), at most `max_lines` lines."""
    try:
        with path.open("rb") as log:
            size = log.seek(0, 2)
            log.seek(max(offset, size - max_bytes))
            data = log.read()
    except OSError:
        return ""
    lines = data.decode("utf-8", errors="replace").strip().splitlines()
    return "\n".join(lines[-max_lines:])
