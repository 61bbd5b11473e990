"""`/v1/files`: multipart upload of batch input (JSONL, `purpose=batch`), file objects and their contents.

Every route asks who calls first (401 without a key when keys are required); a file belongs to the key that
uploaded it (a batch's output and error files to the batch's key), and another key's file answers 404.
Uploads are parsed as they arrive (python-multipart) and written straight to disk, so a 100 MB file never
sits in memory; the size limit is `batch.max_file_bytes`.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path
from typing import IO, Any

import orjson
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from sidecar.asgi import (
    JSON_HEADERS,
    ClientDisconnected,
    Receive,
    Scope,
    Send,
    request_headers,
    send_bytes,
    send_error,
)
from sidecar.batch.store import BatchStore, file_document
from sidecar.callers import ANONYMOUS, Caller, Identify
from sidecar.errors import InvalidRequest, MethodNotAllowed, NotFound, PayloadTooLarge, SidecarError

PREFIX = "/v1/files"
CHUNK = 256 * 1024
# RFC 2046 section 5.1.1: 1-70 characters from this set, not ending in a space.
_BOUNDARY = re.compile(rb"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")


class FilesRoute:
    """The `/v1/files` endpoints (an ASGI callable with `matches`)."""

    def __init__(self, store: BatchStore, max_bytes: int, identify: Identify | None = None) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self._identify = identify

    def matches(self, path: str) -> bool:
        return path == PREFIX or path.startswith(PREFIX + "/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._dispatch(scope, receive, send)
        except SidecarError as error:
            await send_error(send, error)
        except ClientDisconnected:
            return

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        caller = self._identify(request_headers(scope)) if self._identify is not None else ANONYMOUS
        segments = [s for s in scope["path"][len(PREFIX):].split("/") if s]
        method = scope["method"]
        if not segments:
            if method == "POST":
                document = await self._upload(scope, receive, caller)
                await send_bytes(send, 200, orjson.dumps(document), JSON_HEADERS)
            elif method == "GET":
                rows = await asyncio.to_thread(self.store.list_files, 100, caller)
                body = {"object": "list", "data": [file_document(row) for row in rows]}
                await send_bytes(send, 200, orjson.dumps(body), JSON_HEADERS)
            else:
                raise MethodNotAllowed(f"{PREFIX} accepts GET and POST, not {method}")
            return
        if method != "GET":
            raise MethodNotAllowed(f"{scope['path']} accepts GET, not {method}")
        row = await asyncio.to_thread(self.store.get_file, segments[0])
        if row is None or not caller.sees(row.owner_key_id):  # another key's file does not exist
            raise NotFound(f"No such file: {segments[0]}")
        if len(segments) == 1:
            await send_bytes(send, 200, orjson.dumps(file_document(row)), JSON_HEADERS)
        elif segments[1:] == ["content"]:
            await self._send_content(self.store.file_path(row.id), send)
        else:
            raise NotFound(f"no route for GET {scope['path']}")

    async def _send_content(self, path: Path, send: Send) -> None:
        headers = [(b"content-type", b"application/jsonl"), (b"content-length", str(path.stat().st_size).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        with path.open("rb") as handle:
            while chunk := await asyncio.to_thread(handle.read, CHUNK):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def _upload(self, scope: Scope, receive: Receive, caller: Caller) -> dict[str, Any]:
        headers = dict(scope["headers"])
        kind, options = parse_options_header(headers.get(b"content-type", b""))
        if kind != b"multipart/form-data" or b"boundary" not in options:
            raise InvalidRequest("upload a file as multipart/form-data with fields 'file' and 'purpose'")
        if not _BOUNDARY.fullmatch(options[b"boundary"]):
            raise InvalidRequest("the multipart boundary must be 1-70 characters allowed by RFC 2046")
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            raise PayloadTooLarge(f"the file exceeds the limit of {self.max_bytes} bytes")
        self.store.files_dir.mkdir(parents=True, exist_ok=True)
        upload = self.store.files_dir / f".upload-{uuid.uuid4().hex}"
        form = _Form(upload)
        try:
            await self._parse(receive, MultipartParser(options[b"boundary"], form.callbacks()))
            form.close()
            if form.fields.get("purpose") != "batch":
                raise InvalidRequest("purpose must be 'batch' (the only purpose this server accepts)", param="purpose")
            if form.filename is None:
                raise InvalidRequest("the form has no 'file' field", param="file")
            row = await asyncio.to_thread(self.store.add_file, upload, form.filename, "batch", caller.key_id)
        finally:
            form.close()
            upload.unlink(missing_ok=True)
        return file_document(row)

    async def _parse(self, receive: Receive, parser: MultipartParser) -> None:
        """Feed the body to the parser as it arrives; a malformed body is a 400 naming where it broke."""
        try:
            size = 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnected
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_bytes:
                    raise PayloadTooLarge(f"the file exceeds the limit of {self.max_bytes} bytes")
                parser.write(chunk)
                if not message.get("more_body", False):
                    break
            parser.finalize()
        except FormParserError as exc:
            raise InvalidRequest(f"malformed multipart body: {exc}", param="file") from exc
        if parser.state != MultipartState.END:
            raise InvalidRequest("malformed multipart body: it ends before its closing boundary", param="file")


class _Form:
    """Collects a multipart form: small fields in memory, the `file` field written to disk."""

    def __init__(self, upload: Path) -> None:
        self.upload = upload
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._value = bytearray()
        self._file: IO[bytes] | None = None

    def callbacks(self) -> Any:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda data, start, end: self._add_header_bytes("name", data[start:end]),
            "on_header_value": lambda data, start, end: self._add_header_bytes("value", data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._headers, self._name, self._value = {}, None, bytearray()

    def _add_header_bytes(self, which: str, data: bytes) -> None:
        if which == "name":
            self._header_name += data
        else:
            self._header_value += data

    def _header_end(self) -> None:
        self._headers[self._header_name.lower()] = self._header_value
        self._header_name, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        if self._name == "file":
            self.filename = options.get(b"filename", b"upload.jsonl").decode("utf-8", "replace") or "upload.jsonl"
            self._file = self.upload.open("wb")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._name == "file" and self._file is not None:
            self._file.write(data[start:end])
        elif len(self._value) < 4096:  # form fields are short (purpose); ignore anything longer
            self._value += data[start:end]

    def _part_end(self) -> None:
        if self._name == "file":
            self.close()
        elif self._name:
            self.fields[self._name] = self._value.decode("utf-8", "replace")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
