"""The Tollgate dashboard (run with `tollgate dashboard`): sign-in, then one page per concern."""

from __future__ import annotations

import logging

import streamlit as st

from core.settings import Settings, load_settings
from core.signins import Outcome, record_sign_in
from dashboards.auth import User, authenticate
from dashboards.context import USER_KEY, current_user, engine_for, sign_in_throttle

log = logging.getLogger("tollgate.dashboard")

PAGES = (
    ("pages/release_gate.py", "Release gate", "release-gate"),
    ("pages/suite_runs.py", "Suite runs", "suite-runs"),
    ("pages/latency.py", "Latency", "latency"),
    ("pages/cost.py", "Cost", "cost"),
    ("pages/traffic.py", "Traffic", "traffic"),
    ("pages/quality.py", "Quality in production", "quality"),
    ("pages/guardrails.py", "Guardrails and errors", "guardrails"),
    ("pages/reviews.py", "Review queue", "reviews"),
)


def sign_in() -> None:
    """The sign-in form; a wrong name or password gets the same answer; repeated failures are throttled."""
    st.title("Tollgate")
    settings = load_settings()
    if not settings.dashboard.users:
        st.error("No dashboard users are configured (dashboard.users in tollgate.yaml).")
        return
    with st.form("sign_in"):
        name = st.text_input("User", key="sign_in_name")
        password = st.text_input("Password", type="password", key="sign_in_password")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        user = _attempt_sign_in(settings, name, password)
        if user is None:
            return
        st.session_state[USER_KEY] = user
        st.rerun()


def _attempt_sign_in(settings: Settings, name: str, password: str) -> User | None:
    """Check the throttle, then the password; every attempt is recorded (never the password)."""
    throttle = sign_in_throttle(settings.dashboard.sign_in)
    address = _client_address()
    known = name.strip() if name.strip() in settings.dashboard.users else None  # an unknown name may be a password
    verdict = throttle.check(name, address)
    if not verdict.allowed:
        _record(settings, known, address, "throttled")
        st.error(f"Too many failed sign-ins. Try again in {verdict.wait_text}.")
        return None
    user = authenticate(settings.dashboard, name, password)
    if user is None:
        verdict = throttle.failed(name, address)
        _record(settings, known, address, "failed")
        st.error("Unknown user or wrong password.")
        if not verdict.allowed:
            st.error(f"Too many failed sign-ins. Try again in {verdict.wait_text}.")
        return None
    throttle.succeeded(name)
    _record(settings, known, address, "ok")
    return user


def _client_address() -> str | None:
    """The browser's address, or None on loopback (then only the per-name limit applies).

    It comes from the WebSocket connection; behind a reverse proxy it is the proxy's address.
    """
    address = st.context.ip_address
    return address if isinstance(address, str) and address else None


def _record(settings: Settings, user_name: str | None, address: str | None, outcome: Outcome) -> None:
    try:
        record_sign_in(engine_for(settings.resolved_database_url), user_name=user_name, address=address,
                       outcome=outcome)
    except Exception:  # boundary: a database hiccup must not lock everyone out; the throttle still holds
        log.exception("cannot record a dashboard sign-in (%s)", outcome)


def sign_out() -> None:
    """Forget the signed-in user of this browser session."""
    st.session_state.pop(USER_KEY, None)


def main() -> None:
    st.set_page_config(page_title="Tollgate", layout="wide")
    user = current_user()
    if user is None:
        # Always navigate, so Streamlit never lists the pages folder to a signed-out visitor.
        st.navigation([st.Page(sign_in, title="Sign in", url_path="sign-in")], position="hidden").run()
        return
    with st.sidebar:
        st.caption(f"Signed in as **{user.name}** ({user.role})")
        st.button("Sign out", key="sign_out", on_click=sign_out)
    pages = [
        st.Page(path, title=title, url_path=url, default=index == 0)
        for index, (path, title, url) in enumerate(PAGES)
    ]
    st.navigation(pages).run()


main()
