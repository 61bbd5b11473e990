"""Running a sidecar inside the current process on a background thread, for tests and benchmarks."""

from __future__ import annotations

import threading
import time
from typing import Any, Self

import uvicorn

from core.settings import Settings
from sidecar.app import SidecarApp, create_app
from sidecar.server import uvicorn_config


class ThreadedSidecar:
    """A sidecar on uvicorn in a daemon thread with its own event loop; `url` ends in `/v1`."""

    def __init__(self, settings: Settings, **app_kwargs: Any) -> None:
        self.app: SidecarApp = create_app(settings, **app_kwargs)
        config = uvicorn_config(self.app, settings, "warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="tollgate-sidecar", daemon=True)
        self.url = ""

    def start(self, timeout_s: float = 60.0) -> Self:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("sidecar thread exited during start-up (see the log above)")
            if time.monotonic() > deadline:
                raise TimeoutError("sidecar did not start in time")
            time.sleep(0.01)
        host, port = self._server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}/v1"
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
