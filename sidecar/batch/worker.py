"""The batch worker: runs batches' requests through the sidecar's own endpoints, at low priority.

Requests go through the same endpoint code as live traffic, as the key that created the batch (its models,
limits and budget apply and count), (stages, retries, fallbacks, traffic log), called
in-process, with the admission priority set to `BATCH` so they wait behind live requests for a deployment
slot, and at most `batch.concurrency` at a time across all batches. Each finished request is appended to
the batch's results file at once; on start the worker resumes every batch the database says is unfinished,
skipping the requests whose results are already on disk.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

import orjson

from core.config.batch import BatchSettings
from core.tables.common import utc_now
from sidecar.admission import ADMISSION_PRIORITY, BATCH
from sidecar.batch.inputs import BatchRequest, check_input, parse_line
from sidecar.batch.store import BatchStore, ResultWriter, epoch

log = logging.getLogger("tollgate.sidecar.batch")
Call = Callable[[str, dict[str, Any], str, str | None], Awaitable[tuple[int, bytes]]]
"""`(url, body, request_id, key_id) -> (status, body)`: one request, run as the batch's key (None: no key)."""
COUNTS_EVERY_S = 0.5
T = TypeVar("T")


class BatchWorker:
    """Finds unfinished batches and runs them; `wake()` after creating or cancelling one."""

    def __init__(self, store: BatchStore, settings: BatchSettings, call: Call) -> None:
        self.store = store
        self.settings = settings
        self._call = call
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._wake = asyncio.Event()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._task: asyncio.Task[None] | None = None
        # Database and disk calls run on threads of our own, so shutdown can wait for them: a cancelled
        # `asyncio.to_thread` call keeps running and would hand its connection back after the engine closed.
        self._threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tollgate-batch")

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="tollgate-batch-worker")

    def wake(self) -> None:
        self._wake.set()

    async def aclose(self) -> None:
        """Stop scheduling and cancel requests in flight (they run again after a restart)."""
        tasks = [task for task in (self._task, *self._running.values()) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(None, self._threads.shutdown)

    def _blocking(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        """Run a blocking call on the worker's threads."""
        return asyncio.get_running_loop().run_in_executor(self._threads, partial(function, *args, **kwargs))

    async def _loop(self) -> None:
        ADMISSION_PRIORITY.set(BATCH)  # inherited by every task started from here
        while True:
            try:
                for batch_id in await self._blocking(self.store.active_batch_ids):
                    if batch_id not in self._running:
                        task = asyncio.get_running_loop().create_task(self._guarded(batch_id))
                        self._running[batch_id] = task
            except Exception:  # boundary: a database outage must not end the worker
                log.exception("batch: cannot list unfinished batches; retrying")
            try:
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval_s)
            except TimeoutError:
                pass
            self._wake.clear()

    async def _guarded(self, batch_id: str) -> None:
        try:
            await self._run(batch_id)
        except asyncio.CancelledError:
            raise
        except FileNotFoundError as exc:  # the input file is gone from disk: the batch cannot go on
            log.error("batch %s: %s; the batch fails", batch_id, exc)
            document = orjson.dumps({"object": "list", "data": [
                {"code": "input_file_missing", "message": "the input file is missing", "param": None, "line": None}]})
            await self._blocking(self.store.update_batch, batch_id, status="failed", failed_at=utc_now(),
                                    errors=document.decode())
        except Exception:  # boundary: one broken batch must not stop the others
            log.exception("batch %s: failed while running; it is retried on the next poll", batch_id)
            await asyncio.sleep(self.settings.poll_interval_s)
        finally:
            self._running.pop(batch_id, None)

    async def _run(self, batch_id: str) -> None:
        batch = await self._blocking(self.store.get_batch, batch_id)
        if batch is None:
            return
        if batch.status == "validating":
            batch = await self._validate(batch_id, batch.input_file_id, batch.endpoint)
            if batch is None or batch.status == "failed":
                return
        if batch.status == "in_progress":
            status = await self._execute(batch_id, batch.input_file_id, batch.owner_key_id)
            final = {"cancelled": "cancelling", "expired": "finalizing"}.get(status, "finalizing")
            batch = await self._blocking(self.store.update_batch, batch_id, status=final,
                                            **({"finalizing_at": utc_now()} if final == "finalizing" else {}))
            if batch is None:
                return
            if status == "expired":
                await self._finalize(batch_id, "expired", batch.owner_key_id)
                return
        if batch.status == "cancelling":
            await self._finalize(batch_id, "cancelled", batch.owner_key_id)
        elif batch.status == "finalizing":
            await self._finalize(batch_id, "completed", batch.owner_key_id)

    async def _validate(self, batch_id: str, file_id: str, endpoint: str) -> Any:
        def check() -> tuple[int, list[dict]]:
            return check_input(self.store.input_lines(file_id), endpoint, self.settings.max_requests)

        total, errors = await self._blocking(check)
        if errors:
            document = orjson.dumps({"object": "list", "data": errors}).decode()
            return await self._blocking(self.store.update_batch, batch_id, status="failed", failed_at=utc_now(),
                                           errors=document, total=total)
        return await self._blocking(self.store.update_batch, batch_id, status="in_progress",
                                       in_progress_at=utc_now(), total=total)

    async def _execute(self, batch_id: str, file_id: str, key_id: str | None) -> str:
        """Run the requests not done yet; returns `done`, `cancelled` or `expired`."""
        done = await self._blocking(self.store.read_results, batch_id)
        finished = {orjson.loads(line)["custom_id"]: line for line in done}
        counts = _Counts(sum(1 for line in done if _succeeded(line)), sum(1 for line in done if not _succeeded(line)))
        lines = await self._blocking(lambda: list(self.store.input_lines(file_id)))
        writer = ResultWriter(self.store.results_path(batch_id))
        in_flight: set[asyncio.Task[None]] = set()
        outcome = "done"
        try:
            for _number, line in lines:
                request = parse_line(line)
                if request.custom_id in finished:
                    continue
                await self._slots.acquire()
                outcome = await self._should_stop(batch_id)
                if outcome != "done":
                    self._slots.release()
                    break
                task = asyncio.get_running_loop().create_task(self._one(batch_id, request, writer, counts, key_id))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                await self._save_counts(batch_id, counts)
            await asyncio.gather(*list(in_flight))
        finally:
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*list(in_flight), return_exceptions=True)
            writer.close()
        await self._blocking(self.store.update_batch, batch_id, completed=counts.completed, failed=counts.failed)
        return outcome

    async def _should_stop(self, batch_id: str) -> str:
        batch = await self._blocking(self.store.get_batch, batch_id)
        if batch is None or batch.status == "cancelling":
            return "cancelled"
        expires_at = batch.expires_at
        if expires_at is not None and utc_now().timestamp() > (epoch(expires_at) or 0):
            return "expired"
        return "done"

    async def _one(self, batch_id: str, request: BatchRequest, writer: ResultWriter, counts: _Counts,
                   key_id: str | None) -> None:
        try:
            request_id = f"{batch_id}-{secrets.token_hex(6)}"
            body = {k: v for k, v in request.body.items() if k not in ("stream", "stream_options")}
            status, raw = await self._call(request.url, body, request_id, key_id)
            writer.append(result_line(request.custom_id, request_id, status, raw))
            if 200 <= status < 300:
                counts.completed += 1
            else:
                counts.failed += 1
        finally:
            self._slots.release()

    async def _save_counts(self, batch_id: str, counts: _Counts) -> None:
        now = time.monotonic()
        if now - counts.saved_at >= COUNTS_EVERY_S:
            counts.saved_at = now
            await self._blocking(self.store.update_batch, batch_id, completed=counts.completed,
                                    failed=counts.failed)

    async def _finalize(self, batch_id: str, status: str, key_id: str | None) -> None:
        """Write the output and error files from the results and close the batch with `status`."""
        results = await self._blocking(self.store.read_results, batch_id)
        succeeded = [line for line in results if _succeeded(line)]
        failed = [line for line in results if not _succeeded(line)]

        def write() -> dict[str, Any]:
            changes: dict[str, Any] = {"status": status, f"{status}_at": utc_now(),
                                       "completed": len(succeeded), "failed": len(failed)}
            if succeeded:
                changes["output_file_id"] = self.store.write_file(
                    succeeded, f"{batch_id}_output.jsonl", "batch_output", key_id).id
            if failed:
                changes["error_file_id"] = self.store.write_file(failed, f"{batch_id}_error.jsonl", "batch_output", key_id).id
            return changes

        changes = await self._blocking(write)
        await self._blocking(self.store.update_batch, batch_id, **changes)
        log.info("batch %s %s: %d succeeded, %d failed", batch_id, status, len(succeeded), len(failed))


class _Counts:
    __slots__ = ("completed", "failed", "saved_at")

    def __init__(self, completed: int, failed: int) -> None:
        self.completed = completed
        self.failed = failed
        self.saved_at = 0.0


def result_line(custom_id: str, request_id: str, status: int, raw: bytes) -> bytes:
    """One line of an output or error file, in the OpenAI shape."""
    try:
        body: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = raw.decode("utf-8", "replace")
    error = None
    if not 200 <= status < 300:
        detail = body.get("error") if isinstance(body, dict) else None
        detail = detail if isinstance(detail, dict) else {}
        error = {"code": detail.get("code") or str(status), "message": detail.get("message") or f"HTTP {status}"}
    return orjson.dumps({
        "id": f"batch_req_{secrets.token_hex(12)}",
        "custom_id": custom_id,
        "response": {"status_code": status, "request_id": request_id, "body": body},
        "error": error,
    })


def _succeeded(line: bytes) -> bool:
    return orjson.loads(line).get("error") is None
