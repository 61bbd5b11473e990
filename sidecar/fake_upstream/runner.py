"""Ways to run the fake upstream on a real loopback port.

- `FakeUpstream`: `async with FakeUpstream(behaviour) as fake:` inside a running event loop.
- `start_fake_upstream_thread(behaviour)`: its own event loop in a daemon thread, for sync tests.
- `serve_until_signal(...)`: the command-line server (uvloop when available), stopped by SIGINT/SIGTERM.

Each offers the admin operations directly too (`set_behaviour`, `script`, `reset`, `stats`), the same
ones the `/_fake/*` routes perform.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

from aiohttp import web

from sidecar.fake_upstream.app import ENGINE, STATE, ServerState, build_app
from sidecar.fake_upstream.behaviour import FakeBehaviour, FakeUpstreamError
from sidecar.fake_upstream.stats import DEFAULT_HISTORY

T = TypeVar("T")
ScriptEntry = FakeBehaviour | Mapping[str, Any]
AppFactory = Callable[..., web.Application]

# Handlers still running at shutdown (slow streams) are cancelled after this long.
_SHUTDOWN_TIMEOUT_S = 0.25
_THREAD_START_TIMEOUT_S = 10.0


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop event loop when uvloop is installed, else the standard one."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency, but the fake works without it
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class FakeUpstream:
    """The fake upstream served on a loopback port by the current event loop."""

    def __init__(
        self,
        behaviour: FakeBehaviour | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        history: int = DEFAULT_HISTORY,
        app_factory: AppFactory = build_app,
    ) -> None:
        # `app_factory` builds another wire format around the same state (the provider fakes).
        self._app = app_factory(behaviour, history=history)
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None

    @property
    def state(self) -> ServerState:
        return self._app[STATE]

    @property
    def port(self) -> int:
        if self._runner is None:
            raise FakeUpstreamError("the fake upstream is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """`http://HOST:PORT`, without the `/v1` prefix (for `/health` and `/_fake/*`)."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The OpenAI base URL, `http://HOST:PORT/v1`."""
        return f"{self.base_url}/v1"

    async def start(self) -> Self:
        """Bind and listen; with port 0 the kernel picks a free port (see `.port`)."""
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._port))
            sock.listen(1024)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise FakeUpstreamError(f"cannot listen on {self._host}:{self._port}: {exc}") from exc
        self._port = int(sock.getsockname()[1])
        self.state.stopping.clear()  # a server closed before may be started again
        runner = web.AppRunner(
            self._app, handler_cancellation=True, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT_S
        )
        try:
            await runner.setup()
            await web.SockSite(runner, sock).start()
        except BaseException:
            await runner.cleanup()
            sock.close()
            raise
        self._runner = runner
        return self

    async def aclose(self) -> None:
        """Stop listening and end open connections (hanging requests included)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def set_behaviour(self, **changes: Any) -> FakeBehaviour:
        """Patch the default behaviour (like `POST /_fake/behaviour`); returns the new defaults."""
        return self.state.behaviours.update(changes)

    def script(self, *entries: ScriptEntry) -> int:
        """Queue one-shot behaviours for the next requests (like `POST /_fake/script`); returns the queue size."""
        return self.state.behaviours.enqueue(list(entries))

    def reset(self) -> None:
        """Start behaviour, empty script, empty statistics (like `POST /_fake/reset`)."""
        self.state.reset()
        if ENGINE in self._app:
            self._app[ENGINE].reset()

    def stats(self) -> dict[str, Any]:
        """What the server received (like `GET /_fake/stats`)."""
        return self.state.stats()

    def set_engine(self, **changes: Any) -> dict[str, Any]:
        """Patch the simulated vLLM engine (like `POST /_fake/engine`); returns its settings and counters."""
        return self._app[ENGINE].update(changes)

    def engine(self) -> dict[str, Any]:
        """The simulated engine's settings and counters (like `GET /_fake/engine`)."""
        return self._app[ENGINE].snapshot()


class FakeUpstreamThread:
    """Runs a `FakeUpstream` on its own event loop in a daemon thread; every method is safe from any thread.

    Usually made by `start_fake_upstream_thread`.
    """

    def __init__(self, fake: FakeUpstream) -> None:
        self._fake = fake
        self._loop = new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-upstream", daemon=True)

    @property
    def url(self) -> str:
        return self._fake.url

    @property
    def base_url(self) -> str:
        return self._fake.base_url

    @property
    def port(self) -> int:
        return self._fake.port

    def start(self) -> Self:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._fake.start(), self._loop)
        try:
            future.result(_THREAD_START_TIMEOUT_S)
        except BaseException:
            self._halt()
            raise
        return self

    def stop(self) -> None:
        """Stop the server and the thread; calling it twice is harmless."""
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._fake.aclose(), self._loop).result(_THREAD_START_TIMEOUT_S)
        self._halt()

    def _halt(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_THREAD_START_TIMEOUT_S)
        self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _call(self, function: Callable[[], T]) -> T:
        # Run on the server's loop so the state is only ever touched from one thread.
        future = asyncio.run_coroutine_threadsafe(_call_async(function), self._loop)
        return future.result(_THREAD_START_TIMEOUT_S)

    def set_behaviour(self, **changes: Any) -> FakeBehaviour:
        return self._call(lambda: self._fake.set_behaviour(**changes))

    def script(self, *entries: ScriptEntry) -> int:
        return self._call(lambda: self._fake.script(*entries))

    def reset(self) -> None:
        self._call(self._fake.reset)

    def stats(self) -> dict[str, Any]:
        return self._call(self._fake.stats)

    def set_engine(self, **changes: Any) -> dict[str, Any]:
        return self._call(lambda: self._fake.set_engine(**changes))

    def engine(self) -> dict[str, Any]:
        return self._call(self._fake.engine)


async def _call_async(function: Callable[[], T]) -> T:
    return function()


def start_fake_upstream_thread(
    behaviour: FakeBehaviour | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    history: int = DEFAULT_HISTORY,
    app_factory: AppFactory = build_app,
) -> FakeUpstreamThread:
    """Start a fake upstream in a daemon thread; use the handle as a context manager or call `.stop()`."""
    fake = FakeUpstream(behaviour, host=host, port=port, history=history, app_factory=app_factory)
    return FakeUpstreamThread(fake).start()


async def _serve(fake: FakeUpstream, on_ready: Callable[[str], None]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with fake:
        on_ready(fake.url)
        await stop.wait()


def serve_until_signal(
    behaviour: FakeBehaviour,
    *,
    host: str,
    port: int,
    history: int = DEFAULT_HISTORY,
    on_ready: Callable[[str], None],
) -> None:
    """Serve in this process until SIGINT or SIGTERM; `on_ready(url)` runs once the port is listening."""
    fake = FakeUpstream(behaviour, host=host, port=port, history=history)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(_serve(fake, on_ready))
