"""Fuzz battery: thousands of generated hostile requests over every sidecar route, against a real sidecar.

    python benchmarks/fuzz.py                      # 12,000 cases, seed 13 (~30 s)
    python benchmarks/fuzz.py --count 2000 --seed 7 --show 20

It starts, in this process, two fake upstreams (one healthy, one answering 503 so upstream failures occur)
and a sidecar on loopback with everything that has a route switched on: virtual keys required, the admin API,
batches and files, releases and feedback, guards and the cache. Then it sends the cases of
`fuzz_cases.generate(seed, count)` one after the other and prints, per route, how many answers had each
status. A finding is any answer >= 500 that is not an upstream failure (502/503/504 in the OpenAI error shape),
any error answer whose body is not `{"error": {"message": str, "type": str, ...}}`, a connection the sidecar
dropped, or an ERROR logged by the sidecar. It exits 1 when there is a finding or when a valid request is not
answered 200 after the battery.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import orjson

if __package__ in (None, ""):  # run as a script: make `benchmarks` and the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

if TYPE_CHECKING:
    from core.settings import Settings

from benchmarks.fuzz_cases import CHAT_MODEL, FLAKY_MODEL, PROMPT_NAME, Case, Credentials, generate

ADMIN_ENV = "TOLLGATE_FUZZ_ADMIN_KEY"
UPSTREAM_FAILURES = frozenset({502, 503, 504})
_LOGGERS = ("tollgate", "uvicorn.error")  # an exception escaping the app is logged by uvicorn
PROMPT = """---
name: greet
model: fuzz-model
parameters: {temperature: 0, max_tokens: 20}
---
[SYSTEM]
You are polite.
[INSTRUCTION]
Say hello to {{ name }}.
"""


@dataclass
class Report:
    """What the battery saw: status counts per route, findings, and the sidecar's ERROR log lines."""

    counts: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    findings: list[str] = field(default_factory=list)
    unsendable: int = 0
    unsendable_reasons: Counter[str] = field(default_factory=Counter)
    errors_logged: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def sent(self) -> int:
        return sum(sum(counter.values()) for counter in self.counts.values())

    def table(self) -> str:
        statuses = sorted({status for counter in self.counts.values() for status in counter})
        head = f"{'route':<16}" + "".join(f"{status:>7}" for status in statuses) + f"{'total':>8}"
        lines = [head, "-" * len(head)]
        for route in sorted(self.counts):
            counter = self.counts[route]
            lines.append(f"{route:<16}" + "".join(f"{counter.get(s, 0):>7}" for s in statuses)
                         + f"{sum(counter.values()):>8}")
        totals = Counter[int]()
        for counter in self.counts.values():
            totals.update(counter)
        lines.append(f"{'all':<16}" + "".join(f"{totals.get(s, 0):>7}" for s in statuses) + f"{self.sent:>8}")
        return "\n".join(lines)


def problem(case: Case, status: int, content_type: str, body: bytes) -> str | None:
    """Why this answer is a finding, or None when it is acceptable."""
    if status >= 500 and status not in UPSTREAM_FAILURES:
        return f"application {status}"
    if status < 400 or case.method == "HEAD":
        return None
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return f"{status} with a body that is not JSON ({content_type or 'no content type'})"
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("message"), str) or not isinstance(error.get("type"), str):
        return f"{status} with a body not in the OpenAI error shape"
    if not content_type.startswith("application/json"):
        return f"{status} JSON error sent as {content_type!r}"
    if status in UPSTREAM_FAILURES and error["type"] not in ("upstream_error", "server_error"):
        return f"{status} that is not an upstream failure ({error['type']})"
    return None


def _wire_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """Headers as bytes; characters HTTP cannot carry in a field value (CTLs) are dropped so the case is sent."""
    wire = []
    for name, value in headers.items():
        clean = "".join(ch for ch in value if ch == "\t" or (" " <= ch != "\x7f")).strip(" \t")
        wire.append((name.encode(), clean.encode("latin-1", "replace")))
    return wire


def run_cases(base_url: str, cases: list[Case], report: Report | None = None) -> Report:
    """Send `cases` to the sidecar at `base_url` (no `/v1`) one by one and judge every answer."""
    report = report or Report()
    started = time.perf_counter()
    with httpx.Client(base_url=base_url, timeout=30.0) as client:
        for case in cases:
            try:
                request = client.build_request(case.method, case.path, headers=_wire_headers(case.headers),
                                               content=case.body)
                response = client.send(request)
            except httpx.LocalProtocolError as exc:
                report.unsendable += 1
                report.unsendable_reasons[str(exc)[:80]] += 1
                continue
            except httpx.TransportError as exc:
                report.counts[case.route][0] += 1
                report.findings.append(f"connection dropped ({exc.__class__.__name__}): {case.describe()}")
                continue
            report.counts[case.route][response.status_code] += 1
            reason = problem(case, response.status_code, response.headers.get("content-type", ""), response.content)
            if reason is not None:
                report.findings.append(f"{reason}: {case.describe()} -> {response.content[:300]!r}")
    report.seconds += time.perf_counter() - started
    return report


def valid_request_works(base_url: str, credentials: Credentials) -> str | None:
    """After the battery, the sidecar still answers an ordinary chat request: None, else what it answered."""
    response = httpx.post(base_url + "/v1/chat/completions", timeout=30.0,
                          headers={"authorization": f"Bearer {credentials.key}"},
                          json={"model": CHAT_MODEL, "messages": [{"role": "user", "content": "still there?"}]})
    if response.status_code == 200 and response.json()["object"] == "chat.completion":
        return None
    return f"{response.status_code} {response.content[:300]!r}"


class _ErrorLog(logging.Handler):
    """Collects ERROR records of the sidecar's loggers (an internal error is logged with its traceback)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()}"[:500])


def fuzz_settings(root: Path, upstream_url: str, flaky_url: str, database_url: str | None = None) -> Settings:
    """A sidecar with every routed capability on (keys required, admin, batches, releases, guards, cache)."""
    from core.settings import Settings

    prompts = root / "prompts"
    prompts.mkdir(parents=True, exist_ok=True)
    (prompts / f"{PROMPT_NAME}.prompt").write_text(PROMPT)
    price = {"input_per_mtok": 0.15, "output_per_mtok": 0.6}
    guards = [{"type": "max_size", "max_chars": 50_000}, {"type": "pii", "action": "redact"},
              {"type": "pii", "where": "output", "action": "redact"}]
    return Settings.model_validate({
        "data_dir": root / ".tollgate",
        "database_url": database_url,
        "models": {CHAT_MODEL: {"deployments": [{"base_url": upstream_url}], "price": price, "context_window": 8192},
                   FLAKY_MODEL: {"deployments": [{"base_url": flaky_url}], "price": price}},
        "embedded": {"enabled": "never"},
        "sidecar": {"port": 0, "retries": 1, "retry_backoff_s": 0.0, "max_body_bytes": 1 << 20},
        "access": {"enabled": True, "require_keys": True, "admin_key_env": ADMIN_ENV},
        "batch": {"enabled": True, "max_file_bytes": 1 << 20, "poll_interval_s": 0.2},
        "releases": {"enabled": True, "prompts_dir": str(prompts), "refresh_interval_s": 1.0},
        "guards": {"policies": [{"guards": guards}]},
        "cache": {"enabled": True},
    })


@contextmanager
def fuzz_sidecar(root: Path, database_url: str | None = None) -> Iterator[tuple[str, Credentials, _ErrorLog]]:
    """Fake upstreams and a fully configured sidecar; yields its base URL, credentials and its ERROR log."""
    from core.database import open_database
    from core.keys import create_key
    from sidecar.fake_upstream import FakeBehaviour, start_fake_upstream_thread
    from sidecar.fake_upstream.behaviour import Fault
    from sidecar.testing import ThreadedSidecar

    admin = "fuzz-admin-" + os.urandom(8).hex()
    previous = os.environ.get(ADMIN_ENV)
    os.environ[ADMIN_ENV] = admin
    errors = _ErrorLog()
    saved = {name: (logging.getLogger(name).level, logging.getLogger(name).propagate) for name in _LOGGERS}
    for name in _LOGGERS:  # every ERROR is captured for the report, nothing is printed over the table
        logger = logging.getLogger(name)
        logger.addHandler(errors)
        logger.setLevel(logging.ERROR)
        logger.propagate = False
    try:
        with start_fake_upstream_thread(FakeBehaviour()) as good, \
                start_fake_upstream_thread(FakeBehaviour(fault=Fault.STATUS, status=503)) as flaky:
            settings = fuzz_settings(root, good.url, flaky.url, database_url)
            engine = open_database(settings.resolved_database_url)
            token = create_key(engine, "fuzz", user="fuzzer").token
            engine.dispose()
            with ThreadedSidecar(settings) as sidecar:
                yield sidecar.url.removesuffix("/v1"), Credentials(token, admin), errors
    finally:
        for name, (level, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.removeHandler(errors)
            logger.setLevel(level)
            logger.propagate = propagate
        if previous is None:
            os.environ.pop(ADMIN_ENV, None)
        else:
            os.environ[ADMIN_ENV] = previous


def run_battery(seed: int, count: int, root: Path, database_url: str | None = None) -> tuple[Report, str | None]:
    """Generate and send the cases against a fresh sidecar; the report and whether a valid request still works."""
    with fuzz_sidecar(root, database_url) as (url, credentials, errors):
        report = run_cases(url, generate(seed, count, credentials))
        alive = valid_request_works(url, credentials)
        report.errors_logged = list(errors.lines)
    return report, alive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--count", type=int, default=12_000)
    parser.add_argument("--show", type=int, default=30, help="findings to print (default 30)")
    parser.add_argument("--database-url", default=None,
                        help="an empty database for the sidecar (e.g. postgresql://...); default: SQLite in a scratch folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)  # libraries' warnings about bad input would bury the table
    with tempfile.TemporaryDirectory(prefix="tollgate-fuzz-") as scratch:
        report, alive = run_battery(args.seed, args.count, Path(scratch), args.database_url)
    print(f"fuzz battery: seed {args.seed}, {report.sent} requests sent in {report.seconds:.1f} s "
          f"({report.unsendable} not sendable by the HTTP client and skipped)\n")
    print(report.table())
    application_5xx = sum(1 for finding in report.findings if finding.startswith("application 5"))
    print(f"\napplication 5xx (not upstream failures): {application_5xx}")
    print(f"findings: {len(report.findings)}; ERROR lines logged by the sidecar: {len(report.errors_logged)}")
    for finding in report.findings[: args.show]:
        print("  " + finding)
    for line in report.errors_logged[: args.show]:
        print("  logged: " + line)
    print(f"valid request after the battery: {'200 OK' if alive is None else 'FAILED: ' + alive}")
    return 0 if alive is None and not report.findings and not report.errors_logged else 1


if __name__ == "__main__":
    sys.exit(main())
