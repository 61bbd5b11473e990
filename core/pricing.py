"""What a call cost: configured prices first, then built-in defaults, then the bundled price table.

Input tokens served from a provider's prompt cache are billed at the cached-read price, and tokens written
to it at the cache-write price, when the price has them (litellm's map does for Anthropic, OpenAI and Gemini
models); otherwise at the input price. `prompt_tokens` counts them all, as OpenAI and litellm report it.

An unknown price is `None`, never 0, so a missing price shows up as missing instead of as free.
The bundled table (`core.price_table`, built from litellm's price map) loads in milliseconds; litellm is
never imported for prices. With `litellm_price_fallback: true`, a model missing from the table is looked
up in the installed litellm's own bundled map file (read, not imported).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from core import price_table
from core.settings import EMBEDDED_MODEL_NAME, Price, Settings

logger = logging.getLogger("tollgate.pricing")

TOKENS_PER_PRICE_UNIT = price_table.TOKENS_PER_PRICE_UNIT

DEFAULT_PRICES: dict[str, Price] = {
    # Served locally by the embedded llama.cpp server: no per-token bill.
    EMBEDDED_MODEL_NAME: Price(input_per_mtok=0.0, output_per_mtok=0.0),
}


class PriceBook:
    """Prices per model in USD per million tokens, looked up once per model and cached.

    Order: `settings.price_for(model)` (a route's price or the `prices` table), then `DEFAULT_PRICES`,
    then the bundled price table (exact name, then the name without its `provider/` prefix), then, when
    `litellm_price_fallback` is set, the installed litellm's price map.
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
            found = price_table.lookup(price_table.bundled_table(), model)
        if found is None and getattr(self._settings, "litellm_price_fallback", False):
            found = price_table.lookup(price_table.litellm_map_table(), model)
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
