"""Dashboard fixtures: a seeded database, a config naming a viewer and a lead, and a signed-in AppTest."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from streamlit.testing.v1 import AppTest

from core.database import open_database
from dashboards.auth import hash_password
from dashboards.context import dispose_engines, forget_sign_in_failures
from tests.dashboards.seed import Seeded, seed

APP = str(Path(__file__).parents[2] / "dashboards" / "app.py")
PASSWORDS = {"lead": "lead-password", "viewer": "viewer-password"}


@pytest.fixture(autouse=True)
def _clean_sign_in_record() -> Iterator[None]:
    """The throttle lives in the process, like the app's: each test starts without failed sign-ins."""
    forget_sign_in_failures()
    yield
    forget_sign_in_failures()


@pytest.fixture
def engine(db_url):
    engine = open_database(db_url)
    yield engine
    engine.dispose()
    dispose_engines()


@pytest.fixture
def seeded(engine) -> Seeded:
    return seed(engine)


@pytest.fixture
def config(engine, tmp_path, monkeypatch) -> Path:
    """A tollgate.yaml pointing at the test database, made the one the app loads."""
    users = {name: {"role": name, "password_hash": hash_password(password)} for name, password in PASSWORDS.items()}
    data = {
        "database_url": engine.url.render_as_string(hide_password=False),
        "dashboard": {"users": users, "page_rows": 25},
        "releases": {"prompts_dir": str(tmp_path / "prompts")},  # no files: the database lists the prompts
    }
    path = tmp_path / "tollgate.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    monkeypatch.setenv("TOLLGATE_CONFIG", str(path))
    return path


def frame(at: AppTest, key: str) -> Any:
    """The DataFrame a page shows with `show_table(..., key=key)`."""
    return at.container(key).dataframe[0].value


def metrics(at: AppTest) -> dict[str, str]:
    """Every `st.metric` on the page: {label: shown value}."""
    return {metric.label: metric.value for metric in at.metric}


def sign_in(at: AppTest, name: str, password: str) -> AppTest:
    at.run()
    at.text_input(key="sign_in_name").set_value(name)
    at.text_input(key="sign_in_password").set_value(password)
    at.button[0].click().run()
    return at


@pytest.fixture
def open_page(config) -> Iterator[Callable[..., AppTest]]:
    """`open_page("pages/traffic.py", role="lead")`: a signed-in AppTest showing that page."""

    def open_(page: str, role: str = "viewer") -> AppTest:
        at = sign_in(AppTest.from_file(APP, default_timeout=30), role, PASSWORDS[role])
        assert not at.exception, at.exception
        at.switch_page(page).run()
        assert not at.exception, at.exception
        return at

    yield open_
    dispose_engines()
