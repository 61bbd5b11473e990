"""Malformed `multipart/form-data` uploads for `/v1/files`, generated from a seed.

Each case starts from a valid upload (a `purpose` field and a JSONL `file`) and breaks it: wrong or missing
boundaries, truncated parts, headers without colons, bare LF line ends, odd `Content-Disposition`
parameters, bytes flipped, inserted or removed at random.
"""

from __future__ import annotations

import random

import orjson

LINE = orjson.dumps({"custom_id": "c1", "method": "POST", "url": "/v1/chat/completions",
                     "body": {"model": "fuzz-model", "messages": [{"role": "user", "content": "hi"}]}})


def valid_upload(boundary: str, content: bytes = LINE + b"\n", purpose: bytes = b"batch",
                 filename: bytes = b"input.jsonl") -> bytes:
    b = boundary.encode("latin-1")
    return (b"--" + b + b'\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n' + purpose + b"\r\n"
            b"--" + b + b'\r\nContent-Disposition: form-data; name="file"; filename="' + filename + b'"\r\n'
            b"Content-Type: application/jsonl\r\n\r\n" + content + b"\r\n--" + b + b"--\r\n")


_BOUNDARIES = ["fuzzboundary", "", "x" * 71, "x" * 5000, 'quoted"inside', "a b", "-", "--", "é", "\x7f", ";", "=",
               "\t", "boundary\x00nul"]


def _content_type(rng: random.Random, boundary: str) -> str:
    shapes = [f"multipart/form-data; boundary={boundary}", f'multipart/form-data; boundary="{boundary}"',
              "multipart/form-data", "multipart/form-data; boundary=", 'multipart/form-data; boundary="',
              f"multipart/mixed; boundary={boundary}", f"Multipart/Form-Data; BOUNDARY={boundary}",
              f"multipart/form-data; boundary={boundary}; boundary=other", "application/json", "text/plain",
              f"multipart/form-data;boundary={boundary};charset=\x01", f"multipart/form-data; boundary*={boundary}"]
    return rng.choice(shapes) if rng.random() < 0.6 else shapes[0]


def _break(rng: random.Random, body: bytes, boundary: str) -> bytes:
    b = boundary.encode("latin-1", "replace")
    edits = [
        lambda: body[: rng.randrange(len(body) + 1)],  # truncated anywhere
        lambda: body.replace(b"\r\n", b"\n"),  # bare LF line ends
        lambda: body.replace(b"--" + b + b"--", b""),  # no closing boundary
        lambda: body.replace(b"Content-Disposition: ", b"Content-Disposition"),  # header without a colon
        lambda: body.replace(b"form-data; ", b"form-data; name=\"\"; name*=UTF-8''%FF; "),
        lambda: body.replace(b"--" + b, b"--" + b + b"X", 1),  # the first boundary does not match
        lambda: b"preamble garbage \x00\xff" + body + b"epilogue",
        lambda: body.replace(b"\r\n\r\n", b"\r\n" + b"X-Pad: " + b"y" * 20000 + b"\r\n\r\n", 1),  # a huge header
        lambda: _bytes_edit(rng, body),
        lambda: _bytes_edit(rng, _bytes_edit(rng, body)),
        lambda: body.replace(b'filename="input.jsonl"', b'filename="' + bytes(rng.randrange(256) for _ in range(20)) + b'"'),
        lambda: body + b"\r\n--" + b + b"\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nsecond",
    ]
    return rng.choice(edits)()


def _bytes_edit(rng: random.Random, body: bytes) -> bytes:
    if not body:
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 50)))
    at = rng.randrange(len(body))
    kind = rng.randrange(3)
    if kind == 0:
        return body[:at] + bytes([rng.randrange(256)]) + body[at + 1 :]
    if kind == 1:
        return body[:at] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 20))) + body[at:]
    return body[:at] + body[at + rng.randint(1, 40) :]


def multipart_case(rng: random.Random) -> tuple[dict[str, str], bytes]:
    """Headers (content type) and body of one upload, valid about one time in eight."""
    boundary = "fuzzboundary" if rng.random() < 0.6 else rng.choice(_BOUNDARIES)
    content = LINE + b"\n"
    if rng.random() < 0.2:
        content = rng.choice([b"", b"not json\n", b"\x00" * 100, LINE * 3, b'{"custom_id": 5}\n', b"[]\n",
                              LINE.replace(b"fuzz-model", b"\xff\xfe")])
    purpose = rng.choice([b"batch"] * 6 + [b"", b"fine-tune", b"x" * 10000, b"\xff"])
    body = valid_upload(boundary, content, purpose)
    if rng.random() < 0.875:
        body = _break(rng, body, boundary)
    try:
        header = _content_type(rng, boundary)
        header.encode("latin-1")
    except UnicodeEncodeError:
        header = "multipart/form-data; boundary=fuzzboundary"
    return {"content-type": header}, body
