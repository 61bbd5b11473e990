"""Running the sidecar on uvicorn (uvloop event loop, httptools parser)."""

from __future__ import annotations

import logging
import sys
from typing import Any

import uvicorn

from core.settings import Settings
from sidecar.app import SidecarApp, create_app


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def uvicorn_config(app: SidecarApp, settings: Settings, log_level: str = "info") -> uvicorn.Config:
    """The one uvicorn configuration: uvloop, httptools, no access log or proxy-header rewriting on the hot path."""
    return uvicorn.Config(
        app,
        host=settings.sidecar.host,
        port=settings.sidecar.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        proxy_headers=False,
        log_level=log_level,
        timeout_graceful_shutdown=30,
        server_header=False,
        date_header=False,
    )


def serve(settings: Settings, *, log_level: str = "info", ready_line: bool = True) -> int:
    """Serve until SIGINT/SIGTERM; on shutdown the traffic log is flushed before the process exits."""
    configure_logging(log_level.upper())
    server = uvicorn.Server(uvicorn_config(create_app(settings), settings, log_level))
    if ready_line:
        _announce_when_started(server)
    server.run()
    return 0 if server.started else 1


def _announce_when_started(server: uvicorn.Server) -> None:
    """Print `tollgate sidecar listening on URL` on stdout once bound (port 0 resolves to the real port)."""
    original = server.startup

    async def startup(sockets: Any = None) -> None:
        await original(sockets=sockets)
        if server.started:
            for srv in server.servers:
                for sock in srv.sockets:
                    host, port = sock.getsockname()[:2]
                    print(f"tollgate sidecar listening on http://{host}:{port}/v1", flush=True)
                    return

    server.startup = startup  # type: ignore[method-assign]
