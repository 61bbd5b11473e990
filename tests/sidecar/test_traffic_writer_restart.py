"""A killed traffic writer costs the sidecar nothing: no litellm, no database stack, no spooling in the request
process; its unacknowledged batches go to the next writer, which is writing again straight away."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import sqlalchemy as sa

from sidecar.traffic import ProcessTrafficLog
from tests.sidecar.test_traffic_finaliser import chat_raw, make_settings
from tests.sidecar.test_traffic_writer import count_rows, distinct_requests, wait_for

ROOT = Path(__file__).parents[2]
WAIT_S = 60.0  # a test timeout only: the waits below end on the event


def test_a_killed_writer_is_replaced_and_the_new_one_writes(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url, flush_interval_s=0.01)
    engine = sa.create_engine(sqlite_url)
    log = ProcessTrafficLog(settings).start()
    try:
        assert log.wait_ready(WAIT_S)
        log.submit(chat_raw(0, model="acme/unpriced-model-1b"))  # no price anywhere: must not import litellm
        wait_for(lambda: log.stats.written == 1, WAIT_S)
        first = log.writer_pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: log.writer_pid not in (None, first), WAIT_S)
        log.submit(chat_raw(1))
        wait_for(lambda: count_rows(engine) == 2, WAIT_S)
    finally:
        log.close()
        engine.dispose()
    assert log.stats.writer_restarts == 1 and log.stats.spooled_in_parent == 0


SIDECAR_UNDER_TRAFFIC = textwrap.dedent(
    """
    import json, os, signal, sys, time
    import httpx
    from pathlib import Path
    from core.settings import Settings
    from sidecar.fake_upstream import FakeBehaviour, start_fake_upstream_thread
    from sidecar.testing import ThreadedSidecar

    def wait(condition):
        deadline = time.monotonic() + 60
        while not condition():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.02)

    with start_fake_upstream_thread(FakeBehaviour()) as fake:
        settings = Settings(
            data_dir=Path(sys.argv[1]), embedded={"enabled": "never"}, sidecar={"port": 0},
            models={"fake-model": {"deployments": [{"base_url": fake.url}]}},  # no price: not in any table
            traffic={"batch_size": 5, "flush_interval_s": 0.01},
        )
        with ThreadedSidecar(settings) as proxy, httpx.Client(base_url=proxy.url, timeout=30) as client:
            log = proxy.app.runtime.traffic
            body = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
            assert log.wait_ready(60)
            for round_ in range(3):
                for _ in range(20):
                    assert client.post("/chat/completions", json=body).status_code == 200
                pid = log.writer_pid
                os.kill(pid, signal.SIGKILL)
                wait(lambda: log.writer_pid not in (None, pid))
            wait(lambda: log.stats.written == 60)
            stats = log.stats
            print(json.dumps({
                "modules": sorted(m for m in ("litellm", "sqlalchemy", "sidecar.traffic.writer") if m in sys.modules),
                "restarts": stats.writer_restarts, "spooled_in_parent": stats.spooled_in_parent,
            }))
    """
)


def test_the_sidecar_process_stays_free_of_litellm_and_the_database_stack_through_writer_kills(
    tmp_path: Path, sqlite_url: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SIDECAR_UNDER_TRAFFIC, str(tmp_path / ".tollgate")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"modules": [], "restarts": 3, "spooled_in_parent": 0}
    engine = sa.create_engine(f"sqlite:///{(tmp_path / '.tollgate' / 'tollgate.db').as_posix()}")
    try:
        assert count_rows(engine) == distinct_requests(engine) == 60
    finally:
        engine.dispose()
