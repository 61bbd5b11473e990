"""Virtual keys: hashed at rest, token shown once, verify and revoke; the `tollgate keys` command."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa

from core.cli import main
from core.database import open_database
from core.keys import AccessError, KeyNotFound, create_key, list_keys, revoke_key, verify_token


@pytest.fixture
def engine(db_url):
    engine = open_database(db_url)
    yield engine
    engine.dispose()


def test_a_key_is_stored_only_as_its_hash(engine):
    created = create_key(engine, "checkout", user="ana", allowed_models=["fake-model"], requests_per_minute=5)
    assert created.token.startswith("tg-") and len(created.token) > 40
    with engine.connect() as connection:
        stored = connection.execute(sa.text("SELECT * FROM virtual_key")).mappings().one()
    assert created.token not in " ".join(str(v) for v in stored.values())
    assert stored["key_hash"] == hashlib.sha256(created.token.encode()).hexdigest()
    assert stored["prefix"] == created.token[:10]
    assert verify_token(engine, created.token).id == created.key.id
    assert verify_token(engine, created.token + "x") is None


def test_revoked_keys_no_longer_verify_and_leave_the_list(engine):
    kept = create_key(engine, "kept")
    gone = create_key(engine, "gone")
    first = revoke_key(engine, gone.key.id).revoked_at
    assert revoke_key(engine, gone.key.id).revoked_at == first  # revoking twice keeps the first time
    assert verify_token(engine, gone.token) is None
    assert [k.id for k in list_keys(engine)] == [kept.key.id]
    assert {k.id for k in list_keys(engine, include_revoked=True)} == {kept.key.id, gone.key.id}
    with pytest.raises(KeyNotFound):
        revoke_key(engine, "key_nope")
    with pytest.raises(AccessError, match="positive"):
        create_key(engine, "bad", requests_per_minute=0)


def test_keys_command_creates_lists_and_revokes(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TOLLGATE_DATABASE_URL", f"sqlite:///{tmp_path / 'keys.db'}")
    assert main(["keys", "create", "batch-job", "--model", "fake-*", "--rpm", "10", "--budget", "5"]) == 0
    out = capsys.readouterr().out
    token = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("key: "))
    key_id = out.split()[1]
    assert main(["keys", "list"]) == 0
    listing = capsys.readouterr().out
    assert key_id in listing and "models=fake-*" in listing and "rpm=10" in listing and token not in listing
    assert main(["keys", "revoke", key_id]) == 0
    assert main(["keys", "list"]) == 0
    assert capsys.readouterr().out.strip().endswith("no keys")
    assert main(["keys", "revoke", "key_unknown"]) == 2
    assert "no key with id" in capsys.readouterr().err
