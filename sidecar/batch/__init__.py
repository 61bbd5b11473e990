"""Batch jobs: the OpenAI Batch API subset (`/v1/files`, `/v1/batches`) run by a background worker.

`build_batch_routes(runtime)` makes the two routers and starts the worker (when `batch.enabled`).
"""

from __future__ import annotations

from typing import Any

from sidecar.batch.api import build_batches_router
from sidecar.batch.files import FilesRoute
from sidecar.batch.store import BatchStore
from sidecar.batch.worker import BatchWorker


def build_batch_routes(runtime: Any) -> list[Any]:
    """The `/v1/files` and `/v1/batches` routes, with the worker started and registered for shutdown."""
    from sidecar.admin import runtime_engine
    from sidecar.batch.loopback import endpoint_caller

    settings = runtime.settings
    store = BatchStore(runtime_engine(runtime), settings.data_dir)
    worker = BatchWorker(store, settings.batch, endpoint_caller(runtime))
    worker.start()
    runtime.extra_closers.append(worker.aclose)
    files = FilesRoute(store, settings.batch.max_file_bytes, runtime.identify)
    return [files, build_batches_router(store, worker, settings.batch.completion_window_s, runtime.identify)]


__all__ = ["BatchStore", "BatchWorker", "build_batch_routes"]
