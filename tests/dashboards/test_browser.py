"""The dashboard in a real browser: `tollgate dashboard` serves it, Debian's chromium (via Playwright) signs in
as a lead, promotes a version that passed its gate, is refused one that did not, and saves screenshots."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from core.database import open_database
from core.releases.labels import release_status
from dashboards.auth import hash_password
from tests.conftest import free_port, skip_or_fail
from tests.dashboards.seed import BAD_VERSION, GOOD_VERSION, PROMPT, seed
from tests.waiting import wait_until

CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def dashboard(sqlite_url, tmp_path) -> Iterator[tuple[str, str]]:
    """`tollgate dashboard` on a free loopback port over a seeded SQLite database: (url, database url)."""
    engine = open_database(sqlite_url)
    seed(engine)
    engine.dispose()
    config = tmp_path / "tollgate.yaml"
    config.write_text(yaml.safe_dump({
        "database_url": sqlite_url,
        "dashboard": {"users": {"lead": {"role": "lead", "password_hash": hash_password("lead-password")}}},
        "releases": {"prompts_dir": str(tmp_path / "prompts")},
    }))
    port = free_port()
    tollgate = shutil.which("tollgate", path=str(Path(sys.executable).parent)) or "tollgate"
    process = subprocess.Popen(
        [tollgate, "dashboard", "--config", str(config), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "TOLLGATE_CONFIG": ""},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process)
        yield url, sqlite_url
    finally:
        process.terminate()
        process.wait(timeout=20)


def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    def healthy() -> bool:
        if process.poll() is not None:
            pytest.fail(f"tollgate dashboard exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    wait_until(healthy, timeout=120, what="the dashboard to answer its health check")


def test_lead_promotes_in_a_real_browser(dashboard, tmp_path):
    if not Path(CHROMIUM).exists():
        skip_or_fail(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    url, database = dashboard
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.set_default_timeout(30_000)
            page.goto(url)
            page.get_by_role("textbox", name="User").fill("lead")
            page.get_by_role("textbox", name="Password").fill("lead-password")
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_text("Versions and their gate")).to_be_visible()

            _choose(page, "Version", GOOD_VERSION)
            page.get_by_role("button", name=f"Apply: promote {GOOD_VERSION[:12]}").click()
            expect(page.get_by_text(f"{PROMPT}: production → {GOOD_VERSION[:12]}")).to_be_visible()

            _choose(page, "Version", BAD_VERSION)
            page.get_by_role("button", name=f"Apply: promote {BAD_VERSION[:12]}").click()
            refusal = page.get_by_text("Refused:")
            expect(refusal).to_be_visible()
            expect(refusal).to_contain_text("exit_status: the run exited with status 1")
            page.screenshot(path=str(tmp_path / "release-gate.png"), full_page=True)

            page.get_by_role("link", name="Guardrails and errors").click()
            charts = page.locator("[data-testid='stVegaLiteChart']")
            expect(charts.first).to_be_visible()
            # Vega draws asynchronously: wait for the marks, not just the chart's frame.
            page.wait_for_function(
                "() => [...document.querySelectorAll(\"[data-testid='stVegaLiteChart']\")]"
                ".every(c => c.querySelector('canvas, svg .mark-rect path, svg .mark-rect'))"
            )
            page.screenshot(path=str(tmp_path / "guardrails.png"), full_page=True)
        finally:
            browser.close()

    for name in ("release-gate.png", "guardrails.png"):
        assert (tmp_path / name).stat().st_size > 10_000
    engine = open_database(database)
    try:
        assert [(s.label, s.target.version) for s in release_status(engine, PROMPT)] == [("production", GOOD_VERSION)]
    finally:
        engine.dispose()


def _choose(page, label: str, option: str) -> None:
    """Pick `option` in the Streamlit selectbox labelled `label`."""
    page.get_by_test_id("stSelectbox").filter(has_text=label).locator("input").click()
    page.get_by_role("option", name=option).click()
