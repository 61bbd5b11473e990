"""What every upstream client offers the proxy: send a request, get status and headers, then the body."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol


class UpstreamConnectError(Exception):
    """The upstream could not be reached, or closed the connection before answering."""


class UpstreamTimeoutError(Exception):
    """The upstream did not answer (or went silent inside a stream) within the configured time."""


class UpstreamStreamError(Exception):
    """The upstream's body broke off after the response had started."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect_s: float
    first_byte_s: float
    idle_s: float


class UpstreamResponse(Protocol):
    """An upstream answer whose status is known and whose body has not been read yet."""

    status: int
    retry_after_s: float | None

    async def read(self) -> bytes:
        """The whole body; raises UpstreamStreamError or UpstreamTimeoutError if it breaks off."""
        ...

    def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; raises UpstreamStreamError or UpstreamTimeoutError if it breaks off."""
        ...

    def release(self) -> None:
        """Give the connection back (or drop it when the body was not fully read)."""
        ...


class UpstreamClient(Protocol):
    """One upstream deployment's transport."""

    async def send(self, path: str, body: bytes, payload: dict | None, timeouts: Timeouts) -> UpstreamResponse:
        """POST `body` (already serialised; `payload` is the same request as a dict) to `path`."""
        ...

    async def aclose(self) -> None: ...


class ReadResponse:
    """An upstream answer whose body has already been read whole (the forwarder reads non-stream answers
    before returning them, so a body that breaks off is retried like a connection failure)."""

    __slots__ = ("body", "retry_after_s", "status")

    def __init__(self, status: int, body: bytes, retry_after_s: float | None = None) -> None:
        self.status = status
        self.body = body
        self.retry_after_s = retry_after_s

    @classmethod
    async def read_from(cls, response: UpstreamResponse) -> ReadResponse:
        """Read `response` whole and give its connection back; raises what `response.read()` raises."""
        try:
            body = await response.read()
        finally:
            response.release()
        return cls(response.status, body, response.retry_after_s)

    async def read(self) -> bytes:
        return self.body

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        yield self.body

    def release(self) -> None:
        """Nothing to give back: the connection was released when the body was read."""
