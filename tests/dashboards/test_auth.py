"""Sign-in: salted password hashes, roles from the config, and what a viewer is not offered."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError
from streamlit.testing.v1 import AppTest

from core.config.dashboard import DashboardSettings
from core.signins import sign_ins_since
from dashboards import command
from dashboards.auth import authenticate, hash_password, verify_password
from tests.dashboards.conftest import APP, PASSWORDS, sign_in


def test_hashes_are_salted_and_verify_only_the_right_password():
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second  # per-user salt
    assert first.startswith("scrypt$16384$8$1$")
    assert verify_password("correct horse", first) and verify_password("correct horse", second)
    assert not verify_password("correct hors", first)
    assert not verify_password("correct horse", "scrypt$garbage")
    assert not verify_password("correct horse", "md5$abc")


def test_pbkdf2_hashes_are_accepted_too():
    import base64
    import hashlib

    salt = b"0123456789abcdef"
    key = hashlib.pbkdf2_hmac("sha256", b"secret pw", salt, 1000)
    stored = f"pbkdf2_sha256$1000${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"
    assert verify_password("secret pw", stored)
    assert not verify_password("secret px", stored)


def test_authenticate_returns_the_configured_role():
    settings = DashboardSettings(users={
        "ana": {"role": "lead", "password_hash": hash_password("ana-password")},
        "ben": {"password_hash": hash_password("ben-password")},
    })
    ana = authenticate(settings, "ana", "ana-password")
    ben = authenticate(settings, " ben ", "ben-password")
    assert ana is not None and (ana.name, ana.role, ana.is_lead) == ("ana", "lead", True)
    assert ben is not None and (ben.name, ben.role, ben.is_lead) == ("ben", "viewer", False)
    assert authenticate(settings, "ana", "ben-password") is None
    assert authenticate(settings, "nobody", "ana-password") is None


def test_a_plain_password_in_the_config_is_rejected():
    with pytest.raises(ValidationError, match="hash-password"):
        DashboardSettings(users={"ana": {"role": "lead", "password_hash": "hunter22"}})


def test_hash_password_command_reads_stdin(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("long enough password\n"))
    parser = __import__("argparse").ArgumentParser()
    command.add_arguments(parser)
    assert command.run(parser.parse_args(["hash-password", "--password-stdin"])) == 0
    printed = capsys.readouterr().out.strip()
    assert verify_password("long enough password", printed)


def test_streamlit_runs_headless_on_loopback_without_usage_stats():
    line = command.streamlit_arguments("127.0.0.1", 8600)
    assert line[0] == "run" and line[1].endswith("dashboards/app.py")
    assert {"--server.address=127.0.0.1", "--server.port=8600", "--server.headless=true",
            "--browser.gatherUsageStats=false"} <= set(line)


def test_wrong_password_is_refused(config):
    at = sign_in(AppTest.from_file(APP, default_timeout=30), "lead", "not-the-password")
    assert [error.value for error in at.error] == ["Unknown user or wrong password."]
    assert "tollgate_user" not in at.session_state


def test_the_sixth_attempt_in_a_minute_is_refused_even_with_the_right_password(config, engine):
    since = datetime.now(UTC)
    for attempt in range(5):
        at = sign_in(AppTest.from_file(APP, default_timeout=30), "lead", f"guess-{attempt}")
        assert "tollgate_user" not in at.session_state
    assert any("Too many failed sign-ins" in error.value for error in at.error)  # said on the fifth failure
    at = sign_in(AppTest.from_file(APP, default_timeout=30), "lead", PASSWORDS["lead"])
    assert "tollgate_user" not in at.session_state
    assert [error.value for error in at.error] == ["Too many failed sign-ins. Try again in 60 s."]
    viewer = sign_in(AppTest.from_file(APP, default_timeout=30), "viewer", PASSWORDS["viewer"])
    assert viewer.session_state["tollgate_user"].role == "viewer"  # another name is not locked out
    recorded = sign_ins_since(engine, since)
    assert [(r.user_name, r.outcome) for r in recorded] == [("lead", "failed")] * 5 + [
        ("lead", "throttled"), ("viewer", "ok")]


def test_sign_in_records_hold_no_password_nor_an_unknown_name(config, engine):
    since = datetime.now(UTC)
    sign_in(AppTest.from_file(APP, default_timeout=30), "hunter2-typed-in-the-name-field", "pw-guess-1")
    sign_in(AppTest.from_file(APP, default_timeout=30), "lead", "pw-guess-2")
    recorded = sign_ins_since(engine, since)
    assert [(r.user_name, r.outcome) for r in recorded] == [(None, "failed"), ("lead", "failed")]
    stored = " ".join(str(r.model_dump()) for r in recorded)
    assert not any(secret in stored for secret in ("hunter2", "pw-guess"))


def test_a_viewer_is_not_offered_changes(seeded, open_page):
    reviews = open_page("pages/reviews.py", role="viewer")
    assert any("Only leads can label review items" in info.value for info in reviews.info)
    assert not reviews.get("form")
    gate = open_page("pages/release_gate.py", role="viewer")
    assert any("Only leads can change releases" in info.value for info in gate.info)
    assert not [button for button in gate.button if button.key == "release_apply"]


def test_lead_signs_in_and_out(config):
    at = sign_in(AppTest.from_file(APP, default_timeout=30), "lead", PASSWORDS["lead"])
    assert at.session_state["tollgate_user"].role == "lead"
    at.button(key="sign_out").click().run()
    assert "tollgate_user" not in at.session_state
    assert at.text_input(key="sign_in_name") is not None
