"""The event-stream parser against the WHATWG rules, and a property: any valid framing, any chunking."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.sse import DONE_EVENT, Event, EventStreamError, EventStreamParser, encode_event, parse_events


def one_byte_at_a_time(raw: bytes) -> list[Event]:
    return parse_events(raw[i : i + 1] for i in range(len(raw)))


@pytest.mark.parametrize(
    "raw",
    [
        b'data: {"a":1}\n\n',
        b'data:{"a":1}\n\n',
        b'data: {"a":1}\r\n\r\n',
        b'data: {"a":1}\r\r',
        b'\xef\xbb\xbfdata: {"a":1}\n\n',
        b': keep-alive\n\ndata: {"a":1}\n\n',
        b'id: 7\nevent: message\nretry: 10\ndata: {"a":1}\n\n',
        b'data: {"a":\ndata: 1}\n\n',
    ],
    ids=["canonical", "no-space", "crlf", "cr", "bom", "heartbeat", "fields", "multi-line"],
)
def test_every_framing_gives_the_same_data(raw: bytes) -> None:
    for events in (parse_events([raw]), one_byte_at_a_time(raw)):
        assert len(events) == 1
        assert events[0].data.replace(b"\n", b"") == b'{"a":1}'


def test_fields_are_kept_and_the_last_id_persists() -> None:
    events = parse_events([b"id: 7\nevent: delta\nretry: 250\ndata: x\n\ndata: y\n\n"])
    assert events == [Event(b"x", "delta", "7", 250), Event(b"y", "message", "7", 250)]


def test_spec_edge_cases() -> None:
    raw = (
        b"data\n\n"  # a field name alone: an empty data line -> one event with empty data
        b"data:  two spaces\n\n"  # only one space is removed
        b"event: ignored\n\n"  # no data: nothing dispatched, and the type does not leak into the next event
        b"data: a\ndata: b\n\n"
        b"retry: soon\nid: x\x00y\ndata: c\n\n"  # invalid retry and an id with NUL are ignored
        b"unknown: field\ndata: d\n\n"
        b"data: unfinished"  # no blank line before the end: discarded
    )
    events = parse_events([raw])
    assert [e.data for e in events] == [b"", b" two spaces", b"a\nb", b"c", b"d"]
    assert all(e.event == "message" and e.id == "" and e.retry is None for e in events)


def test_crlf_split_between_chunks_is_one_line_end() -> None:
    parser = EventStreamParser()
    assert parser.feed(b"data: 1\r") == []
    assert parser.feed(b"\n\r") == [Event(b"1")]
    assert parser.feed(b"\ndata: 2\r\n\r\n") == [Event(b"2")]


def test_a_bom_is_skipped_only_at_the_start_even_when_split() -> None:
    assert one_byte_at_a_time(b"\xef\xbb\xbfdata: 1\n\n") == [Event(b"1")]
    assert parse_events([b"\xef", b"data: 1\n\n"]) == []  # not a BOM: the bytes make an unknown field
    assert parse_events([b"data: 1\n\n\xef\xbb\xbfdata: 2\n\n"]) == [Event(b"1")]


def test_done_and_the_canonical_encoding() -> None:
    assert parse_events([b"data:[DONE]\n\n"])[0].done
    assert DONE_EVENT == b"data: [DONE]\n\n"
    assert encode_event(b"a\nb") == b"data: a\ndata: b\n\n"


def test_an_endless_line_is_refused() -> None:
    parser = EventStreamParser(max_line_bytes=100)
    with pytest.raises(EventStreamError):
        parser.feed(b"data: " + b"x" * 200)


# --- property: any framing of a sequence of events, split anywhere, parses back to the same events ---

_line_text = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=20)
_payload = st.lists(_line_text, min_size=1, max_size=3).map(lambda lines: "\n".join(lines).encode())


@st.composite
def _framed(draw: st.DrawFn) -> tuple[list[bytes], list[bytes]]:
    payloads = draw(st.lists(_payload, max_size=6))
    newline = draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
    parts: list[bytes] = [b"\xef\xbb\xbf"] if draw(st.booleans()) else []
    for payload in payloads:
        if draw(st.booleans()):
            parts.append(b": heartbeat" + newline + newline)
        if draw(st.booleans()):
            parts.append(b"id: 1" + newline + b"event: chunk" + newline + b"retry: 5" + newline)
        for line in payload.split(b"\n"):
            space = b" " if draw(st.booleans()) else b""
            if line.startswith(b" "):
                space = b" "  # a leading space of the value needs the separator space before it
            parts.append(b"data:" + space + line + newline)
        parts.append(newline)
    raw = b"".join(parts)
    cuts = sorted(draw(st.lists(st.integers(0, len(raw)), max_size=8)))
    chunks = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    return payloads, chunks


@settings(max_examples=300, deadline=None)
@given(_framed())
def test_any_framing_under_any_chunking_parses_back(case: tuple[list[bytes], list[bytes]]) -> None:
    payloads, chunks = case
    assert [event.data for event in parse_events(chunks)] == payloads
