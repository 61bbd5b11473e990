"""The plugin is inert until used: a plain project's pytest run keeps its environment and imports nothing heavy.

Each run writes, at the end of its session, what changed in `os.environ` since its conftest was imported (before
any plugin's `pytest_configure`) and which heavy modules were imported, so the assertions read what the run did.
"""

from __future__ import annotations

import json

import pytest

from core.offline import OFFLINE_ENV
from tests.harness.test_plugin import fake, make_project  # noqa: F401  # the fake upstream fixture

pytest_plugins = ["pytester"]

HEAVY = ("deepeval", "litellm", "streamlit", "sidecar", "harness.session", "harness.recorder", "core.settings",
         "core.database", "sqlalchemy")

PROBE = f"""
import json, os, sys
import pytest

BEFORE = dict(os.environ)
BEFORE.pop("PYTEST_CURRENT_TEST", None)  # pytest's own, set and removed around every test
HEAVY = {HEAVY!r}


@pytest.hookimpl(wrapper=True)
def pytest_sessionfinish(session):
    yield
    changed = {{key: value for key, value in os.environ.items()
               if BEFORE.get(key) != value and key != "PYTEST_CURRENT_TEST"}}
    removed = sorted(set(BEFORE) - set(os.environ))
    heavy = sorted(name for name in sys.modules if name.split(".")[0] in HEAVY or name in HEAVY)
    with open("probe.json", "w") as handle:
        json.dump({{"changed": changed, "removed": removed, "heavy": heavy}}, handle)
"""


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test process itself runs offline (the repository's conftest): the scratch runs start without it."""
    for key in [*OFFLINE_ENV, "DEEPEVAL_CACHE_FOLDER"]:
        monkeypatch.delenv(key, raising=False)


def probe(pytester: pytest.Pytester) -> dict:
    return json.loads((pytester.path / "probe.json").read_text())


def plain_project(pytester: pytest.Pytester, ini: str = "") -> None:
    pytester.makeconftest(PROBE)
    pytester.makepyfile(test_plain="def test_one():\n    assert 1 + 1 == 2\n")
    # The ini value alone (as in this repository's own config) is configuration, not use.
    pytester.makeini(f"[pytest]\nasyncio_default_fixture_loop_scope = function\n{ini}")


@pytest.mark.usefixtures("clean_env")
def test_plain_project_keeps_its_environment_and_imports_nothing_heavy(pytester):
    plain_project(pytester, ini="tollgate_baseline = suites/baselines/main.json\ntollgate_concurrency = 1\n")
    # deepeval's own pytest plugin imports deepeval in every run; it is not ours to judge here.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:deepeval")
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    seen = probe(pytester)
    assert seen["changed"] == {} and seen["removed"] == []
    assert seen["heavy"] == []
    assert not (pytester.path / ".tollgate").exists()  # no sidecar run folder, no database, no report
    assert "tollgate gate" not in result.stdout.str() and "== tollgate ==" not in result.stdout.str()


@pytest.mark.usefixtures("clean_env")
def test_a_tollgate_option_activates_the_quiet_environment(pytester):
    plain_project(pytester)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:deepeval", "--tollgate-no-gate")
    assert result.ret == 0
    seen = probe(pytester)
    assert seen["changed"]["HF_HUB_OFFLINE"] == "1"
    assert not (pytester.path / ".tollgate").exists()  # still no case: nothing started


@pytest.mark.usefixtures("clean_env")
def test_a_marker_activates_the_plugin(pytester, fake):  # noqa: F811
    make_project(pytester, n_cases=3)
    pytester.makeconftest(PROBE)
    # No --tollgate-* option: the markers alone activate it (the URL comes from the ini file).
    pytester.makeini(f"[pytest]\nasyncio_default_fixture_loop_scope = function\ntollgate_url = {fake.url}\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:deepeval")
    result.assert_outcomes(passed=3)
    assert result.ret == 0
    seen = probe(pytester)
    assert {key: seen["changed"].get(key) for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")} == {
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    assert "harness.session" in seen["heavy"] and "harness.recorder" in seen["heavy"]
    assert not any(name.split(".")[0] in ("streamlit", "deepeval", "litellm", "sidecar") for name in seen["heavy"])
    assert (pytester.path / ".tollgate" / "reports" / "last.json").exists()
