"""The Tollgate dashboard (run with `tollgate dashboard`): sign-in, then one page per concern."""

from __future__ import annotations

import streamlit as st

from core.settings import load_settings
from dashboards.auth import authenticate
from dashboards.context import USER_KEY, current_user

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
    """The sign-in form; a wrong name or password gets the same answer."""
    st.title("Tollgate")
    settings = load_settings().dashboard
    if not settings.users:
        st.error("No dashboard users are configured (dashboard.users in tollgate.yaml).")
        return
    with st.form("sign_in"):
        name = st.text_input("User", key="sign_in_name")
        password = st.text_input("Password", type="password", key="sign_in_password")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        user = authenticate(settings, name, password)
        if user is None:
            st.error("Unknown user or wrong password.")
            return
        st.session_state[USER_KEY] = user
        st.rerun()


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
