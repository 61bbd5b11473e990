"""A loopback HTTP server that answers every request with one recorded transcript, byte for byte."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

TRANSCRIPTS = Path(__file__).parent / "transcripts"


@dataclass
class Recording:
    """What to answer: a transcript file, its status and content type, and the size of each network write."""

    name: str
    status: int = 200
    content_type: str = "text/event-stream"
    write_bytes: int = 0  # 0: one write

    @property
    def body(self) -> bytes:
        return (TRANSCRIPTS / self.name).read_bytes()


@dataclass
class TranscriptServer:
    recording: Recording | None = None
    requests: list[str] = field(default_factory=list)  # path and query of each request received
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.requests.append(request.path_qs)
        recording = self.recording
        assert recording is not None, "no recording set"
        response = web.StreamResponse(status=recording.status, headers={"Content-Type": recording.content_type})
        body = recording.body
        response.content_length = len(body)
        await response.prepare(request)
        step = recording.write_bytes or len(body)
        for start in range(0, len(body), step):
            await response.write(body[start : start + step])
        await response.write_eof()
        return response


@contextmanager
def transcript_server() -> Iterator[TranscriptServer]:
    """Serve on a free loopback port in a background thread until the block ends."""
    server = TranscriptServer()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()

    async def run() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", server.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()
        await stop.wait()
        await runner.cleanup()

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
