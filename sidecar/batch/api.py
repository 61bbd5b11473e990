"""`/v1/batches`: create, retrieve, list and cancel batches (JSON, on the shared `JsonRouter`)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from core.tables.batches import BatchJob
from core.tables.common import utc_now
from sidecar.admin.router import JsonRequest, JsonRouter
from sidecar.batch.store import BATCH_ENDPOINTS, BatchStore, batch_document, expiry, new_id
from sidecar.batch.worker import BatchWorker
from sidecar.callers import Identify
from sidecar.errors import InvalidRequest, NotFound

COMPLETION_WINDOWS = ("24h",)


def build_batches_router(store: BatchStore, worker: BatchWorker, window_s: float, identify: Identify | None) -> JsonRouter:
    """The `/v1/batches` router: a batch belongs to the key that created it and runs as that key."""
    router = JsonRouter("/v1/batches", identify=identify)

    async def visible(request: JsonRequest) -> BatchJob:
        row = await asyncio.to_thread(store.get_batch, request.params["batch_id"])
        if row is None or not request.caller.sees(row.owner_key_id):  # another key's batch does not exist
            raise NotFound(f"No such batch: {request.params['batch_id']}")
        return row

    async def create(request: JsonRequest) -> tuple[int, Any]:
        payload = request.json()
        endpoint, file_id = payload.get("endpoint"), payload.get("input_file_id")
        window = payload.get("completion_window", "24h")
        metadata = payload.get("metadata")
        if endpoint not in BATCH_ENDPOINTS:
            raise InvalidRequest(f"endpoint must be one of {', '.join(BATCH_ENDPOINTS)}", param="endpoint")
        if window not in COMPLETION_WINDOWS:
            raise InvalidRequest("completion_window must be '24h'", param="completion_window")
        if metadata is not None and not isinstance(metadata, dict):
            raise InvalidRequest("metadata must be an object", param="metadata")
        if not isinstance(file_id, str):
            raise InvalidRequest("input_file_id is required", param="input_file_id")
        source = await asyncio.to_thread(store.get_file, file_id)
        if source is None or source.purpose != "batch" or not request.caller.sees(source.owner_key_id):
            raise InvalidRequest(f"No batch input file with id {file_id}", param="input_file_id")
        created = utc_now()
        row = BatchJob(id=new_id("batch_"), endpoint=endpoint, input_file_id=file_id, completion_window=window,
                       status="validating", created_at=created, expires_at=expiry(created, window_s),
                       owner_key_id=request.caller.key_id,
                       metadata_json=orjson.dumps(metadata).decode() if metadata is not None else None)
        row = await asyncio.to_thread(store.add_batch, row)
        worker.wake()
        return 200, batch_document(row)

    async def retrieve(request: JsonRequest) -> tuple[int, Any]:
        return 200, batch_document(await visible(request))

    async def cancel(request: JsonRequest) -> tuple[int, Any]:
        await visible(request)
        row = await asyncio.to_thread(store.request_cancel, request.params["batch_id"])
        if row is None:
            raise NotFound(f"No such batch: {request.params['batch_id']}")
        worker.wake()
        return 200, batch_document(row)

    async def listing(request: JsonRequest) -> tuple[int, Any]:
        try:
            limit = max(1, min(100, int(request.query.get("limit", "20"))))
        except ValueError:
            raise InvalidRequest("limit must be an integer", param="limit") from None
        rows = await asyncio.to_thread(store.list_batches, limit, request.caller)
        data = [batch_document(row) for row in rows]
        return 200, {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                     "last_id": data[-1]["id"] if data else None, "has_more": False}

    router.add("POST", "", create)
    router.add("GET", "", listing)
    router.add("GET", "{batch_id}", retrieve)
    router.add("POST", "{batch_id}/cancel", cancel)
    return router
