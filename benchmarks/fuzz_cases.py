"""Hostile requests for every sidecar route, generated from a seed (the cases `fuzz.py` sends).

`generate(seed, count)` is deterministic: the same seed and count give the same requests, so a failure is
reproduced by its case index. Each case starts from a valid request for its route and breaks it: wrong types,
huge or negative numbers, unicode and NUL bytes, bad JSON, malformed multipart, wrong methods and content
types, path tricks and missing or wrong credentials.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

CHAT_MODEL = "fuzz-model"
FLAKY_MODEL = "flaky-model"
PROMPT_NAME = "greet"
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
JSON_TYPE = "application/json"


@dataclass(frozen=True, slots=True)
class Credentials:
    """The tokens a case may present: a valid virtual key and the admin key."""

    key: str
    admin: str


@dataclass(slots=True)
class Case:
    """One request: which route family it exercises, and the exact bytes to send."""

    index: int
    route: str
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def describe(self, limit: int = 200) -> str:
        body = self.body[:limit].decode("utf-8", "replace")
        headers = {name: value[:60] for name, value in self.headers.items() if name != "authorization"}
        return f"#{self.index} {self.method} {self.path[:120]} headers={headers} body={body!r}"


# ---- hostile values -------------------------------------------------------------------------------------

_STRINGS = ["", " ", "\x00", "a\x00b", "\u202eevil", "😀" * 50, "é" * 10, "\ud7ff", "null", "true", "-1",
            "../../etc/passwd", "%00", "\\", "'\"<script>", "x" * 5000, "\n\r\t", "NaN", "Infinity", "1e999"]
_NUMBERS: list[int | float] = [0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, -(2**63), 2**64 - 1, 10**30, 1e308, -1e308,
                               0.5, -0.0, 1e-320, 3.7, 129, 1_000_000, 21, -101, 101]


def hostile_value(rng: random.Random, depth: int = 0) -> object:
    """A JSON value chosen to break a parser or a validator."""
    kind = rng.randrange(10 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind in (2, 3):
        return rng.choice(_NUMBERS)
    if kind in (4, 5):
        return rng.choice(_STRINGS) if rng.random() < 0.7 else _random_text(rng, rng.randint(0, 60))
    if kind in (6, 7):
        return [hostile_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {_random_text(rng, rng.randint(0, 8)): hostile_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def _random_text(rng: random.Random, length: int) -> str:
    alphabet = "abcXYZ019 _-./:@\x00\x7f\u00e9\u4e2d\u202e\U0001f600\"\\{}[]%"
    return "".join(rng.choice(alphabet) for _ in range(length))


def _header_text(rng: random.Random) -> str:
    """A header value httpx can send (latin-1, no CR/LF) that is still hostile to whoever reads it."""
    alphabet = "abc019 _-./:@;=,\"'\\\t\u00e9\u00ff%{}"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 300)))


def _deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


_BROKEN_BODIES: list[bytes] = [
    b"", b"{", b"}", b"[1,2,3]", b"null", b"42", b'"text"', b"{'single': 'quotes'}", b'{"a":1,}', b"\xff\xfe\x00",
    b"\xef\xbb\xbf{}", b'{"model": "\x00"}', b"{\"a\": NaN}", b'{"a": 1e999}', b"\x00" * 64, _deep(5000),
    b'{"a":' * 2000, b'{"model": "fuzz-model", "messages": [', b"<html>not json</html>", b'{"a": "\\ud800"}',
]


def mutate_json(rng: random.Random, template: dict[str, object], fields: list[str]) -> bytes:
    """The template with 1-3 fields set to hostile values or removed, or an unparseable body instead."""
    roll = rng.random()
    if roll < 0.12:
        return rng.choice(_BROKEN_BODIES)
    if roll < 0.16:
        return _dumps(rng, hostile_value(rng))
    if roll < 0.30:  # left valid, so hostile content reaches the stages (guards, cache, streams) and upstreams
        return _dumps(rng, template)
    data = dict(template)
    for _ in range(rng.randint(1, 3)):
        name = rng.choice(fields) if rng.random() < 0.85 else _random_text(rng, rng.randint(1, 12))
        if rng.random() < 0.2:
            data.pop(name, None)
        else:
            data[name] = hostile_value(rng)
    return _dumps(rng, data)


def _dumps(rng: random.Random, value: object) -> bytes:
    """JSON text of `value`; integers beyond 64 bits stay exact, and a lone surrogate is sent either escaped
    (valid JSON, invalid Unicode) or raw (invalid UTF-8)."""
    if rng.random() < 0.5:
        return json.dumps(value).encode()
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


# ---- routes ---------------------------------------------------------------------------------------------

CHAT_FIELDS = ["model", "messages", "stream", "stream_options", "temperature", "top_p", "n", "max_tokens",
               "max_completion_tokens", "stop", "seed", "logprobs", "top_logprobs", "logit_bias", "user",
               "presence_penalty", "frequency_penalty", "response_format", "tools", "tool_choice", "prompt"]
COMPLETION_FIELDS = ["model", "prompt", "max_tokens", "n", "best_of", "logprobs", "echo", "stop", "suffix",
                     "temperature", "stream", "seed", "user"]
EMBEDDING_FIELDS = ["model", "input", "dimensions", "encoding_format", "user"]


def _message(rng: random.Random) -> object:
    if rng.random() < 0.7:
        return {"role": rng.choice(["user", "system", "assistant", "tool", "wizard"]), "content": hostile_value(rng)}
    return hostile_value(rng)


def chat_case(rng: random.Random) -> tuple[str, str, bytes]:
    template: dict[str, object] = {"model": rng.choice([CHAT_MODEL, CHAT_MODEL, FLAKY_MODEL, "no-such-model"]),
                                   "messages": [{"role": "user", "content": "hello"}]}
    if rng.random() < 0.3:
        template["stream"] = True
    if rng.random() < 0.3:
        template["messages"] = [_message(rng) for _ in range(rng.randint(0, 3))]
    elif rng.random() < 0.3:  # valid shape, hostile text: unicode, NUL, RTL marks, PII-looking strings, huge
        text = rng.choice(_STRINGS + ["mail me at a@b.co or +1 555 123 4567", "4111 1111 1111 1111", "x" * 60_000])
        template["messages"] = [{"role": "user", "content": text}]
    if rng.random() < 0.1:
        template = {"model": CHAT_MODEL, "prompt": {"name": rng.choice([PROMPT_NAME, "x" * 300, "../x"]),
                                                     "variables": hostile_value(rng)}}
    path = rng.choice(["/v1/chat/completions", "/chat/completions"])
    return "chat", path, mutate_json(rng, template, CHAT_FIELDS)


def completion_case(rng: random.Random) -> tuple[str, str, bytes]:
    template: dict[str, object] = {"model": CHAT_MODEL, "prompt": "hello"}
    return "completions", rng.choice(["/v1/completions", "/completions"]), mutate_json(rng, template, COMPLETION_FIELDS)


def embedding_case(rng: random.Random) -> tuple[str, str, bytes]:
    template: dict[str, object] = {"model": CHAT_MODEL, "input": rng.choice(["hello", ["a", "b"]])}
    return "embeddings", rng.choice(["/v1/embeddings", "/embeddings"]), mutate_json(rng, template, EMBEDDING_FIELDS)


def feedback_case(rng: random.Random) -> tuple[str, str, bytes]:
    template: dict[str, object] = {"request_id": "req-1", "outcome": "converted", "value": 1.0}
    fields = ["request_id", "outcome", "value", "details", "experiment", "variant", "user"]
    return "feedback", "/v1/feedback", mutate_json(rng, template, fields)


def batch_case(rng: random.Random) -> tuple[str, str, bytes]:
    if rng.random() < 0.5:
        template: dict[str, object] = {"input_file_id": "file-x", "endpoint": "/v1/chat/completions",
                                       "completion_window": "24h"}
        fields = ["input_file_id", "endpoint", "completion_window", "metadata"]
        return "batches", "/v1/batches", mutate_json(rng, template, fields)
    tail = rng.choice(["", "/" + _path_segment(rng), "/" + _path_segment(rng) + "/cancel", "?limit=" + _query(rng)])
    return "batches", "/v1/batches" + tail, b""


def admin_keys_case(rng: random.Random) -> tuple[str, str, bytes]:
    which = rng.randrange(5)
    if which == 0:
        template: dict[str, object] = {"name": "fuzz", "allowed_models": [CHAT_MODEL], "budget_usd": 1.0}
        fields = ["name", "user", "allowed_models", "requests_per_minute", "tokens_per_minute", "budget_usd",
                  "budget_period"]
        return "admin-keys", "/admin/keys", mutate_json(rng, template, fields)
    if which == 1:
        template = {"scope": "key", "subject": "k1", "period": "daily", "limit_usd": 5}
        return "admin-keys", "/admin/budgets", mutate_json(rng, template, ["scope", "subject", "period", "limit_usd"])
    if which == 2:
        return "admin-keys", rng.choice(["/admin/keys/", "/admin/budgets/"]) + _path_segment(rng), b""
    query = rng.choice(["since=", "kind=", "limit=", "group_by=", "days=", "include_revoked="]) + _query(rng)
    return "admin-keys", rng.choice(["/admin/alerts", "/admin/costs", "/admin/keys", "/admin/budgets"]) + "?" + query, b""


def admin_releases_case(rng: random.Random) -> tuple[str, str, bytes]:
    subject = rng.choice([PROMPT_NAME, "released-model", _path_segment(rng), "x" * rng.choice([199, 200, 201, 300, 5000])])
    action = rng.choice(["promote", "canary", "shadow", "rollback", "canary", "shadow", "production", "nope"])
    if rng.random() < 0.25:
        query = rng.choice(["subject=", "limit=", "prompt=", "experiment="]) + _query(rng)
        return "admin-releases", rng.choice(["/admin/releases", "/admin/releases/audit", "/admin/releases/variants"]) \
            + "?" + query, b""
    template: dict[str, object] = {"version": "current", "model": CHAT_MODEL, "weight": 0.1, "reason": "fuzz",
                                   "force": True}
    fields = ["version", "model", "weight", "reason", "force", "actor"]
    return "admin-releases", f"/admin/releases/{subject}/{action}", mutate_json(rng, template, fields)


def system_case(rng: random.Random) -> tuple[str, str, bytes]:
    path = rng.choice(["/healthz", "/readyz", "/metrics", "/v1/models", "/models", "/", "/v1", "/v2/chat/completions",
                       "/admin", "/v1/files/../../etc/passwd", "/" + _path_segment(rng), "/v1/" + _path_segment(rng),
                       "/%00", "/admin/" + _path_segment(rng), "//v1//models", "/v1/chat/completions/extra"])
    return "system", path, b"" if rng.random() < 0.7 else mutate_json(rng, {}, ["x"])


def _path_segment(rng: random.Random) -> str:
    raw = rng.choice(["..", ".", "file-" + "0" * 40, "x" * 300, "\x00", "a b", "é", "%2F", "😀", ";", "*", "a\\b",
                      "batch_123", "-1", "99999999999999999999", _random_text(rng, rng.randint(1, 20))])
    return quote(raw, safe="") if rng.random() < 0.8 else quote(raw, safe="/%")


def _query(rng: random.Random) -> str:
    return quote(rng.choice(["", "-1", "0", "abc", "1e9", "2026-13-45", "99999999999999999999", "\x00", "x" * 500,
                             "2026-01-01T00:00:00", "🙂", "1;DROP TABLE", _random_text(rng, 10)]), safe="")


Generator = Callable[[random.Random], tuple[str, str, bytes]]
JSON_ROUTES: list[tuple[Generator, float]] = [
    (chat_case, 0.28), (completion_case, 0.07), (embedding_case, 0.07), (feedback_case, 0.07), (batch_case, 0.08),
    (admin_keys_case, 0.09), (admin_releases_case, 0.10), (system_case, 0.08),
]


def files_case(rng: random.Random) -> tuple[str, str, bytes, dict[str, str]]:
    """Uploads (mostly malformed multipart) and file lookups with path tricks."""
    from benchmarks.fuzz_multipart import multipart_case

    if rng.random() < 0.75:
        headers, body = multipart_case(rng)
        return "files", "/v1/files", body, headers
    tail = rng.choice(["", "/" + _path_segment(rng), "/" + _path_segment(rng) + "/content", "/file-x/" + _path_segment(rng)])
    return "files", "/v1/files" + tail, b"", {}


def _headers(rng: random.Random, route: str, credentials: Credentials) -> dict[str, str]:
    headers: dict[str, str] = {}
    admin = route.startswith("admin")
    roll = rng.random()
    if roll < 0.8:
        headers["authorization"] = f"Bearer {credentials.admin if admin else credentials.key}"
    elif roll < 0.9:
        headers["authorization"] = rng.choice(["Bearer", "Bearer ", "Basic Zm9vOmJhcg==", "bearer tg-nope",
                                               f"Bearer {credentials.key}x", "Bearer " + "k" * 5000,
                                               f"Bearer {credentials.key if admin else credentials.admin}"])
    if rng.random() < 0.3:
        name = rng.choice(["x-tollgate-user", "x-tollgate-feature", "x-tollgate-segment", "x-tollgate-prompt",
                           "x-tollgate-prompt-version", "x-request-id", "traceparent", "x-tollgate-cache"])
        headers[name] = _header_text(rng)
    return headers


def _content_type(rng: random.Random) -> str | None:
    if rng.random() < 0.85:
        return JSON_TYPE
    return rng.choice([None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=utf-16",
                       "multipart/form-data; boundary=x", "application/jsonx", "*/*", "", "application/json\t"])


def generate(seed: int, count: int, credentials: Credentials) -> list[Case]:
    """`count` cases, the same for the same seed; weights spread them over every route family."""
    rng = random.Random(seed)
    generators, weights = zip(*JSON_ROUTES, strict=True)
    cases: list[Case] = []
    for index in range(count):
        extra: dict[str, str] = {}
        if rng.random() < 0.12:
            route, path, body, extra = files_case(rng)
        else:
            route, path, body = rng.choices(generators, weights)[0](rng)
        method = _method(rng, route, path, body)
        headers = _headers(rng, route, credentials)
        if extra:
            headers.update(extra)
        elif body:
            content_type = _content_type(rng)
            if content_type is not None:
                headers["content-type"] = content_type
        if rng.random() < 0.005:
            body = b'{"model": "fuzz-model", "pad": "' + b"x" * (5 * 1024 * 1024) + b'"}'  # over every size limit
        cases.append(Case(index, route, method, path, headers, body))
    return cases


def _method(rng: random.Random, route: str, path: str, body: bytes) -> str:
    if rng.random() < 0.1:
        return rng.choice(METHODS)
    if route == "admin-releases" and body and rng.random() < 0.2:
        return "DELETE"
    if body or route in ("chat", "completions", "embeddings", "feedback"):
        return "POST"
    if route == "admin-keys" and path.startswith(("/admin/keys/", "/admin/budgets/")):
        return "DELETE"
    if route == "batches" and path.endswith("/cancel"):
        return "POST"
    if route == "admin-releases" and rng.random() < 0.25:
        return "DELETE"
    return "GET"
