"""PriceBook: configured prices first, built-in defaults next, the bundled price table (from litellm's map) last; unknown is None."""

from __future__ import annotations

import pytest

from core.pricing import PriceBook
from core.settings import EMBEDDED_MODEL_NAME, Price, Settings


def settings_with(**kwargs: object) -> Settings:
    return Settings(**kwargs)  # type: ignore[arg-type]


def test_configured_price_is_used() -> None:
    book = PriceBook(settings_with(prices={"house-model": Price(input_per_mtok=2.0, output_per_mtok=6.0)}))
    assert book.cost("house-model", 1_000_000, 500_000) == pytest.approx(5.0)
    assert book.cost("house-model", 250, 100) == pytest.approx((250 * 2.0 + 100 * 6.0) / 1e6)


def test_route_price_beats_the_prices_table() -> None:
    settings = settings_with(
        models={
            "chat": {
                "deployments": [{"base_url": "http://127.0.0.1:9"}],
                "price": {"input_per_mtok": 1.0, "output_per_mtok": 1.0},
            }
        },
        prices={"chat": Price(input_per_mtok=9.0, output_per_mtok=9.0)},
    )
    assert PriceBook(settings).cost("chat", 1_000_000, 0) == pytest.approx(1.0)


def test_embedded_model_is_free_by_default_and_config_overrides_it() -> None:
    assert PriceBook(settings_with()).cost(EMBEDDED_MODEL_NAME, 1000, 1000) == 0.0
    assert PriceBook(settings_with()).is_known(EMBEDDED_MODEL_NAME)
    priced = settings_with(prices={EMBEDDED_MODEL_NAME: Price(input_per_mtok=1.0, output_per_mtok=3.0)})
    assert PriceBook(priced).cost(EMBEDDED_MODEL_NAME, 1_000_000, 1_000_000) == pytest.approx(4.0)


def test_missing_tokens_give_no_cost() -> None:
    book = PriceBook(settings_with())
    assert book.cost(EMBEDDED_MODEL_NAME, None, 10) is None
    assert book.cost(EMBEDDED_MODEL_NAME, 10, None) is None
    assert book.cost(None, 10, 10) is None


def test_litellm_price_map_is_the_fallback() -> None:
    import litellm

    entry = litellm.model_cost["gpt-4o"]
    expected = 1000 * entry["input_cost_per_token"] + 2000 * entry["output_cost_per_token"]
    book = PriceBook(settings_with())
    assert book.cost("gpt-4o", 1000, 2000) == pytest.approx(expected)
    assert book.cost("openai/gpt-4o", 1000, 2000) == pytest.approx(expected)  # provider prefix stripped
    assert book.is_known("gpt-4o")


def test_unknown_model_costs_none_not_zero() -> None:
    book = PriceBook(settings_with())
    assert book.cost("acme/never-heard-of-it-7b", 1000, 1000) is None
    assert book.is_known("acme/never-heard-of-it-7b") is False


class CountingSettings:
    """Stands in for Settings to count how often a model's price is looked up."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def price_for(self, model: str) -> Price | None:
        self.calls.append(model)
        return Price(input_per_mtok=1.0, output_per_mtok=1.0) if model == "mine" else None


def test_lookups_are_cached_per_model() -> None:
    settings = CountingSettings()
    book = PriceBook(settings)  # type: ignore[arg-type]
    for _ in range(3):
        assert book.cost("mine", 1_000_000, 0) == pytest.approx(1.0)
        assert book.cost("acme/unknown-model", 1, 1) is None
    assert settings.calls == ["mine", "acme/unknown-model"]


def test_litellm_is_not_imported_for_configured_models() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from core.pricing import PriceBook\n"
        "from core.settings import Settings, Price, EMBEDDED_MODEL_NAME\n"
        "book = PriceBook(Settings(prices={'m': Price(input_per_mtok=1, output_per_mtok=1)}))\n"
        "assert book.cost('m', 1, 1) is not None and book.cost(EMBEDDED_MODEL_NAME, 1, 1) == 0.0\n"
        "print('litellm' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
