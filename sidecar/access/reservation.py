"""What a request may cost before it runs (the budget reservation) and what it used after (the settlement).

A budget reserves a request's worst case at admission so that concurrent requests cannot all pass a check
none of them has paid for yet:

- prompt: the request body's bytes / 4 (the usual English estimate; the real count settles it);
- output: `max_completion_tokens` or `max_tokens` (times `n`), or `access.reserve_max_tokens` when the request
  sets none; embeddings produce no output tokens;
- price: the model's known price, or `access.reserve_price_per_mtok` while it is not known (litellm's map is
  still loading, or the model has no price; such a model's real cost is then counted as unknown, i.e. 0).
"""

from __future__ import annotations

from typing import TypeGuard

from core.config.access import AccessSettings
from core.settings import Price
from core.sse import parse_events
from sidecar.pipeline import Exchange

_BYTES_PER_TOKEN = 4
_MAX_OUTPUT = 1 << 20  # a larger max_tokens is not a real worst case (bounds per model are validation's job)


def worst_case_cost(exchange: Exchange, price: Price | None, access: AccessSettings) -> float:
    """The most `exchange` should cost in USD, from its request alone."""
    prompt = len(exchange.record.request_body or b"") / _BYTES_PER_TOKEN
    output = 0
    if exchange.endpoint != "embeddings":
        payload = exchange.payload
        asked = payload.get("max_completion_tokens") or payload.get("max_tokens")
        output = asked if _positive_int(asked) else access.reserve_max_tokens
        choices = payload.get("n")
        output = min(output, _MAX_OUTPUT) * (choices if _positive_int(choices) else 1)
    if price is None:
        return (prompt + output) * access.reserve_price_per_mtok / 1_000_000
    return (prompt * price.input_per_mtok + output * price.output_per_mtok) / 1_000_000


def used_tokens(exchange: Exchange) -> tuple[int, int]:
    """Reported tokens; when the upstream reported none, a rough estimate (4 bytes a token, an event a token)."""
    tokens_in, tokens_out = exchange.usage[0], exchange.usage[1]
    record = exchange.record
    if tokens_in is None and tokens_out is None and record.status >= 400:
        return 0, 0
    if tokens_in is None:
        tokens_in = len(record.request_body or b"") // _BYTES_PER_TOKEN
    if tokens_out is None:
        if record.stream:
            tokens_out = sum(not event.done for event in parse_events(record.response_chunks))
        else:
            tokens_out = len(record.response_body or b"") // _BYTES_PER_TOKEN
    return int(tokens_in), int(tokens_out)


def _positive_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
