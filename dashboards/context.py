"""What every page needs: the settings, the database engine and the signed-in user.

Engines are opened once per database URL for the life of the Streamlit process (they hold a connection
pool); `dispose_engines` closes them (tests call it so no connection outlives its database).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import streamlit as st
from sqlalchemy.engine import Engine

from core.config.dashboard import SignInLimits
from core.database import open_database
from core.settings import Settings, load_settings
from dashboards.auth import User
from dashboards.queries import Window
from dashboards.throttle import SignInThrottle

USER_KEY = "tollgate_user"
SPANS: dict[str, timedelta] = {
    "last hour": timedelta(hours=1),
    "last 24 hours": timedelta(days=1),
    "last 7 days": timedelta(days=7),
    "last 30 days": timedelta(days=30),
}

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()
_throttles: dict[SignInLimits, SignInThrottle] = {}


@dataclass(frozen=True, slots=True)
class PageContext:
    """The settings, the engine and the user a page renders for."""

    settings: Settings
    engine: Engine
    user: User


def engine_for(url: str) -> Engine:
    """The process-wide engine for `url`, created (and migrated) on first use."""
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = open_database(url)
        return engine


def sign_in_throttle(limits: SignInLimits) -> SignInThrottle:
    """The process-wide sign-in throttle (shared by every browser session of this dashboard)."""
    with _engines_lock:
        throttle = _throttles.get(limits)
        if throttle is None:
            throttle = _throttles[limits] = SignInThrottle(limits)
        return throttle


def forget_sign_in_failures() -> None:
    """Drop every throttle's state (tests start from a clean record)."""
    with _engines_lock:
        _throttles.clear()


def dispose_engines() -> None:
    """Close every engine opened by the dashboard."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def current_user() -> User | None:
    """The signed-in user of this browser session, if any."""
    user = st.session_state.get(USER_KEY)
    return user if isinstance(user, User) else None


def page_context() -> PageContext:
    """The context of the page being rendered; stops the script when nobody is signed in."""
    user = current_user()
    if user is None:
        st.warning("Sign in first.")
        st.stop()
    settings = load_settings()
    return PageContext(settings=settings, engine=engine_for(settings.resolved_database_url), user=user)


def pick_window(key: str, default: str = "last 24 hours") -> Window:
    """A time-range picker; the window ends now."""
    choice = st.selectbox("Time range", list(SPANS), index=list(SPANS).index(default), key=key)
    return Window.last(SPANS[str(choice)])


def lead_only(user: User, action: str) -> bool:
    """True for a lead; otherwise says why the action is not offered."""
    if user.is_lead:
        return True
    st.info(f"Only leads can {action}; you are signed in as a viewer.")
    return False


def show_table(data: Any, *, key: str, hide_index: bool = True, **options: Any) -> None:
    """`st.dataframe` inside a container named `key`, so a test (or a reader of the page tree) finds it."""
    with st.container(key=key):
        st.dataframe(data, hide_index=hide_index, **options)
