"""Record/replay of model responses: the request hash, the JSONL store and the four modes."""

from __future__ import annotations

import asyncio
import hashlib

import orjson
import pytest

from harness.errors import HarnessError
from harness.recording import (
    EXCLUDED_FIELDS,
    RecordingError,
    RecordingMissError,
    RecordingStore,
    RecordMode,
    request_hash,
)

BODY = {
    "model": "local/test",
    "messages": [{"role": "user", "content": "hi"}],
    "temperature": 0,
    "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"b": 1, "a": 2}}},
}
RESPONSE = {"id": "cmpl-1", "choices": [{"message": {"role": "assistant", "content": "hello"}}]}


def test_request_hash_is_sha256_of_sorted_canonical_json():
    expected = hashlib.sha256(orjson.dumps(BODY, option=orjson.OPT_SORT_KEYS)).hexdigest()
    assert request_hash(BODY) == expected and len(expected) == 64


def test_request_hash_ignores_key_order_and_transport_fields():
    reordered = dict(reversed(list(BODY.items())))
    transport = {**BODY, "stream": True, "stream_options": {"include_usage": True}, "user": "u-1"}
    provider = {**BODY, "metadata": {"suite": "s"}, "store": False}
    assert request_hash(reordered) == request_hash(transport) == request_hash(provider) == request_hash(BODY)
    assert EXCLUDED_FIELDS == {"stream", "stream_options", "user", "metadata", "store"}


@pytest.mark.parametrize(
    "change",
    [
        {"temperature": 0.5},
        {"model": "other"},
        {"messages": [{"role": "user", "content": "hi!"}]},
        {"seed": 1},
        {"n": 2},
    ],
)
def test_request_hash_changes_with_content(change):
    assert request_hash({**BODY, **change}) != request_hash(BODY)


def test_record_mode_parse():
    assert RecordMode.parse("REPLAY ") is RecordMode.REPLAY
    assert RecordMode.parse(RecordMode.AUTO) is RecordMode.AUTO
    with pytest.raises(
        RecordingError, match=r"unknown record mode 'rec' \(use one of: off, record, replay, auto\)"
    ):
        RecordMode.parse("rec")


def test_put_get_and_persist_across_stores(tmp_path):
    store = RecordingStore(tmp_path / "recordings")
    digest = request_hash(BODY)
    assert store.get(digest) is None and len(store) == 0
    store.put(digest, {**BODY, "stream": True}, RESPONSE, name="suite one")
    assert store.get(digest) == RESPONSE and digest in store

    path = tmp_path / "recordings" / "suite_one.jsonl"
    (line,) = path.read_bytes().splitlines()
    record = orjson.loads(line)
    assert record["hash"] == digest and record["response"] == RESPONSE
    assert record["request"] == BODY  # stored without the transport-only fields
    assert record["recorded_at"].endswith("+00:00")

    reloaded = RecordingStore(tmp_path / "recordings")
    assert reloaded.get(digest) == RESPONSE and len(reloaded) == 1


def test_last_record_wins_and_writes_append(tmp_path):
    store = RecordingStore(tmp_path)
    store.put("h", BODY, {"v": 1})
    store.put("h", BODY, {"v": 2})
    assert store.get("h") == {"v": 2}
    assert len((tmp_path / "recordings.jsonl").read_bytes().splitlines()) == 2
    assert RecordingStore(tmp_path).get("h") == {"v": 2}


def test_corrupt_middle_line_is_an_error_with_file_and_line(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"hash": "a", "response": {}}\n{oops\n{"hash": "b", "response": {}}\n')
    with pytest.raises(RecordingError, match=r"s\.jsonl:2: invalid JSON in recording") as info:
        RecordingStore(tmp_path).get("a")
    assert isinstance(info.value, HarnessError)
    path.write_bytes(b'{"hash": 3, "response": {}}\n')
    with pytest.raises(
        RecordingError, match=r"s\.jsonl:1: a recording needs 'hash' \(string\) and 'response'"
    ):
        RecordingStore(tmp_path).get("a")


def test_unterminated_last_line_is_skipped_and_the_next_write_starts_a_new_line(tmp_path, caplog):
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"hash": "a", "response": {"v": 1}}\n{"hash": "b", "resp')
    store = RecordingStore(tmp_path)
    assert store.get("a") == {"v": 1} and store.get("b") is None
    assert "skipping an incomplete recording" in caplog.text
    store.put("b", BODY, {"v": 2}, name="s")
    assert RecordingStore(tmp_path).get("b") == {"v": 2}
    lines = path.read_bytes().splitlines()
    assert len(lines) == 2 and lines[-1].startswith(b'{"hash":"b"')


class FakeModel:
    """Counts calls and answers with the request's temperature."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, request):
        self.calls += 1
        await asyncio.sleep(0)
        return {"answer": request["messages"][0]["content"], "call": self.calls}


@pytest.mark.asyncio
async def test_off_calls_and_stores_nothing(tmp_path):
    store, model = RecordingStore(tmp_path), FakeModel()
    fetched = await store.afetch(BODY, model, RecordMode.OFF, prompt="p")
    assert fetched.replayed is False and fetched.response["call"] == 1
    assert fetched.request_hash == request_hash(BODY)
    assert len(store) == 0 and list(tmp_path.iterdir()) == []


@pytest.mark.asyncio
async def test_record_always_calls_and_stores(tmp_path):
    store, model = RecordingStore(tmp_path), FakeModel()
    await store.afetch(BODY, model, RecordMode.RECORD, prompt="booking")
    second = await store.afetch(BODY, model, RecordMode.RECORD, prompt="booking")
    assert model.calls == 2 and second.replayed is False
    assert store.get(second.request_hash) == {"answer": "hi", "call": 2}
    assert len((tmp_path / "booking.jsonl").read_bytes().splitlines()) == 2


@pytest.mark.asyncio
async def test_replay_serves_from_store_and_a_miss_is_an_error(tmp_path):
    recorder = RecordingStore(tmp_path)
    await recorder.afetch(BODY, FakeModel(), RecordMode.RECORD, prompt="booking")

    store, model = RecordingStore(tmp_path), FakeModel()
    fetched = await store.afetch({**BODY, "stream": True}, model, RecordMode.REPLAY, prompt="booking")
    assert fetched.replayed is True and fetched.response == {"answer": "hi", "call": 1}
    assert model.calls == 0

    other = {**BODY, "temperature": 1}
    with pytest.raises(RecordingMissError) as info:
        await store.afetch(other, model, RecordMode.REPLAY, prompt="booking", case="c7")
    assert str(info.value) == f"no recording for request {request_hash(other)} (prompt booking, case c7)"
    assert model.calls == 0


@pytest.mark.asyncio
async def test_auto_replays_when_present_else_records(tmp_path):
    store, model = RecordingStore(tmp_path), FakeModel()
    first = await store.afetch(BODY, model, RecordMode.AUTO, name="suite")
    second = await store.afetch(BODY, model, RecordMode.AUTO, name="suite")
    assert (first.replayed, second.replayed) == (False, True)
    assert model.calls == 1 and second.response == first.response
    assert (tmp_path / "suite.jsonl").exists()


@pytest.mark.asyncio
async def test_concurrent_records_are_all_written_whole(tmp_path):
    store, model = RecordingStore(tmp_path), FakeModel()
    bodies = [{**BODY, "messages": [{"role": "user", "content": f"q{i}"}]} for i in range(200)]
    results = await asyncio.gather(*(store.afetch(b, model, RecordMode.AUTO, name="many") for b in bodies))
    assert model.calls == 200 and not any(r.replayed for r in results)
    lines = (tmp_path / "many.jsonl").read_bytes().splitlines()
    assert len(lines) == 200
    assert {orjson.loads(line)["response"]["answer"] for line in lines} == {f"q{i}" for i in range(200)}
    reloaded = RecordingStore(tmp_path)
    assert all(reloaded.get(r.request_hash) == r.response for r in results)


@pytest.mark.asyncio
async def test_a_failing_call_stores_nothing(tmp_path):
    store = RecordingStore(tmp_path)

    async def broken(request):
        raise RuntimeError("upstream down")

    with pytest.raises(RuntimeError, match="upstream down"):
        await store.afetch(BODY, broken, RecordMode.AUTO, prompt="p")
    assert len(store) == 0 and not (tmp_path / "p.jsonl").exists()
