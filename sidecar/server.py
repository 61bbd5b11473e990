"""Running the sidecar on uvicorn (uvloop event loop, httptools parser)."""

from __future__ import annotations

import errno
import logging
import socket
import sys
from typing import Any

import uvicorn

from core.errors import TollgateError
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


class AddressUnavailable(TollgateError):
    """The sidecar's host and port cannot be bound (in use, not a local address, not permitted)."""


def bind_socket(host: str, port: int) -> socket.socket:
    """A socket bound to `host:port` (port 0 picks a free one), ready to hand to uvicorn."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: rebind over TIME_WAIT
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise AddressUnavailable(f"port {port} on {host} is already in use") from exc
        raise AddressUnavailable(f"cannot listen on {host} port {port}: {exc.strerror or exc}") from exc
    return sock


def serve(settings: Settings, *, log_level: str = "info", ready_line: bool = True) -> int:
    """Serve until SIGINT/SIGTERM; on shutdown the traffic log is flushed before the process exits.

    The port is bound first, before the app, the embedded model or any child process starts, so a port in
    use costs one line (`AddressUnavailable`, exit status 2 from the CLI) and nothing else; uvicorn then
    serves on that same socket, so no other process can take the port in between.
    """
    sock = bind_socket(settings.sidecar.host, settings.sidecar.port)
    with sock:
        configure_logging(log_level.upper())
        server = uvicorn.Server(uvicorn_config(create_app(settings), settings, log_level))
        if ready_line:
            _announce_when_started(server)
        server.run(sockets=[sock])
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
