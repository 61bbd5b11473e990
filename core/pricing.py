"""What a call cost: configured prices first, then built-in defaults, then litellm's price map.

Input tokens served from a provider's prompt cache are billed at the cached-read price, and tokens written
to it at the cache-write price, when the price has them (litellm's map does for Anthropic, OpenAI and Gemini
models); otherwise at the input price. `prompt_tokens` counts them all, as OpenAI and litellm report it.

An unknown price is `None`, never 0, so a missing price shows up as missing instead of as free.
litellm takes seconds to import, so it is imported here only, and only the first time a model
has neither a configured nor a built-in price.
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any

from core.settings import EMBEDDED_MODEL_NAME, Price, Settings

logger = logging.getLogger("tollgate.pricing")

TOKENS_PER_PRICE_UNIT = 1_000_000

DEFAULT_PRICES: dict[str, Price] = {
    # Served locally by the embedded llama.cpp server: no per-token bill.
    EMBEDDED_MODEL_NAME: Price(input_per_mtok=0.0, output_per_mtok=0.0),
}


class PriceBook:
    """Prices per model in USD per million tokens, looked up once per model and cached.

    Order: `settings.price_for(model)` (a route's price or the `prices` table), then `DEFAULT_PRICES`,
    then litellm's `model_cost` map (exact name, then the name without its `provider/` prefix).
    Safe to share between threads.
    """

    def __init__(self, settings: Settings, defaults: dict[str, Price] | None = None) -> None:
        self._settings = settings
        self._defaults = DEFAULT_PRICES if defaults is None else defaults
        self._cache: dict[str, Price | None] = {}
        self._lock = threading.Lock()

    def price(self, model: str) -> Price | None:
        """The price of `model`, or None when nobody knows it."""
        try:
            return self._cache[model]
        except KeyError:
            pass
        found = self._settings.price_for(model) or self._defaults.get(model)
        if found is None:
            found = _litellm_price(model)
        with self._lock:
            self._cache[model] = found
        return found

    def is_known(self, model: str) -> bool:
        """True when `model` has a price from any source."""
        return self.price(model) is not None

    def cost(
        self,
        model: str | None,
        tokens_in: int | None,
        tokens_out: int | None,
        *,
        cached_in: int | None = None,
        cache_write_in: int | None = None,
    ) -> float | None:
        """USD for one call, or None when the model's price or either token count is unknown.

        `cached_in` and `cache_write_in` are the parts of `tokens_in` read from and written to the provider's
        prompt cache.
        """
        if model is None or tokens_in is None or tokens_out is None:
            return None
        price = self.price(model)
        if price is None:
            return None
        read = max(cached_in or 0, 0)
        written = max(cache_write_in or 0, 0)
        plain = max(tokens_in - read - written, 0)
        read_price = price.input_per_mtok if price.cached_input_per_mtok is None else price.cached_input_per_mtok
        write_price = price.input_per_mtok if price.cache_write_per_mtok is None else price.cache_write_per_mtok
        total = (
            plain * price.input_per_mtok + read * read_price + written * write_price + tokens_out * price.output_per_mtok
        )
        return total / TOKENS_PER_PRICE_UNIT


def cached_tokens(usage: dict[str, Any]) -> tuple[int | None, int | None]:
    """(read from, written to) the prompt cache, from an OpenAI-shaped `usage` (litellm's fields included)."""
    details = usage.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    read = _count(details.get("cached_tokens"), usage.get("cache_read_input_tokens"))
    written = _count(usage.get("cache_creation_input_tokens"), details.get("cache_write_tokens"))
    return read, written


def _count(*values: Any) -> int | None:
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _litellm_price(model: str) -> Price | None:
    """Look `model` up in litellm's bundled price map; None when it is not mapped."""
    table = _litellm_model_cost()
    if table is None:
        return None
    candidates = [model]
    if "/" in model:
        candidates.append(model.split("/", 1)[1])
    for name in candidates:
        entry = table.get(name)
        if isinstance(entry, dict):
            price = _price_from_entry(entry)
            if price is not None:
                return price
    return None


def _price_from_entry(entry: dict[str, Any]) -> Price | None:
    per_in = entry.get("input_cost_per_token")
    per_out = entry.get("output_cost_per_token", 0.0 if entry.get("mode") == "embedding" else None)
    if not isinstance(per_in, int | float) or not isinstance(per_out, int | float):
        return None
    read = entry.get("cache_read_input_token_cost")
    write = entry.get("cache_creation_input_token_cost")
    try:
        return Price(
            input_per_mtok=float(per_in) * TOKENS_PER_PRICE_UNIT,
            output_per_mtok=float(per_out) * TOKENS_PER_PRICE_UNIT,
            cached_input_per_mtok=float(read) * TOKENS_PER_PRICE_UNIT if isinstance(read, int | float) else None,
            cache_write_per_mtok=float(write) * TOKENS_PER_PRICE_UNIT if isinstance(write, int | float) else None,
        )
    except ValueError:  # a negative price in the map is a data error, not a price
        return None


@functools.cache
def _litellm_model_cost() -> dict[str, Any] | None:
    """litellm's price map, imported once (a failed import is remembered, not retried per model)."""
    try:
        from core.litellm_loader import load_litellm

        litellm = load_litellm()
    except Exception as exc:  # noqa: BLE001  (an optional source: any import failure means "unknown")
        logger.warning("litellm price map unavailable: %s", exc)
        return None
    table = getattr(litellm, "model_cost", None)
    return table if isinstance(table, dict) else None
