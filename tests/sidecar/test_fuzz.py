"""A 2,000-case slice of the fuzz battery (`benchmarks/fuzz.py`) against a fully configured sidecar.

Every route (proxy, models, files with malformed multipart, batches, feedback, admin keys and releases,
health and metrics) gets generated hostile requests. Nothing may answer >= 500 unless it is an upstream
failure, every error is JSON in the OpenAI shape, nothing is logged at ERROR, and the sidecar still answers
a valid request afterwards (issue #13, item 14).
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.fuzz import run_battery
from benchmarks.fuzz_cases import Credentials, generate

SEED = 20261203
CASES = 2000


def test_the_generation_is_reproducible_and_covers_every_route() -> None:
    credentials = Credentials("tg-key", "admin-key")
    first, again = generate(SEED, 300, credentials), generate(SEED, 300, credentials)
    assert [(c.method, c.path, c.headers, c.body) for c in first] == [(c.method, c.path, c.headers, c.body) for c in again]
    routes = {case.route for case in generate(SEED, CASES, credentials)}
    assert routes == {"chat", "completions", "embeddings", "feedback", "batches", "files", "admin-keys",
                      "admin-releases", "system"}


def test_no_hostile_request_gets_an_application_error(tmp_path: Path, db_url: str) -> None:
    """On SQLite and on PostgreSQL (which refuses NUL characters and over-long strings where SQLite stores them)."""
    report, still_serving = run_battery(SEED, CASES, tmp_path, db_url)
    assert report.sent + report.unsendable == CASES
    assert report.sent >= 0.9 * CASES
    assert report.findings == []
    assert report.errors_logged == []
    assert still_serving is None
    statuses = {status for counter in report.counts.values() for status in counter}
    assert {200, 400, 401, 404, 405} <= statuses  # the battery reached past validation, auth and routing
    assert all(status < 500 or status in (502, 503, 504) for status in statuses)
