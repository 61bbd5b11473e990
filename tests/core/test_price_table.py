"""The compact price table: built from litellm's bundled map, committed, loaded without importing litellm."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core import price_table
from core.pricing import PriceBook
from core.settings import Settings

ROOT = Path(__file__).parents[2]


def test_the_committed_table_is_what_the_installed_litellm_gives() -> None:
    # Fails after a litellm upgrade until `python scripts/build_price_table.py` is run and committed.
    result = subprocess.run(
        [sys.executable, "scripts/build_price_table.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_table_rows_match_litellms_map() -> None:
    table, full = price_table.bundled_table(), price_table.litellm_map_table()
    for model in ("gpt-4o", "gpt-4o-mini", "claude-3-5-haiku-latest", "text-embedding-3-small"):
        assert price_table.lookup(table, model) == price_table.lookup(full, model)
    gpt = price_table.lookup(table, "openai/gpt-4o")  # provider prefix stripped
    assert gpt is not None and gpt.input_per_mtok == 2.5 and gpt.cached_input_per_mtok == 1.25


def test_the_table_loads_without_litellm_and_prices_a_mapped_model() -> None:
    code = (
        "import sys\n"
        "from core.pricing import PriceBook\n"
        "from core.settings import Settings\n"
        "book = PriceBook(Settings())\n"
        "assert book.cost('gpt-4o-mini', 1_000_000, 0) > 0\n"
        "assert book.cost('acme/never-heard-of-it', 1, 1) is None\n"
        "fallback = PriceBook(Settings(litellm_price_fallback=True))\n"
        "assert fallback.cost('acme/never-heard-of-it', 1, 1) is None\n"  # litellm's map read as a file
        "print('litellm' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_a_model_missing_from_the_table_uses_litellms_map_only_when_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(price_table, "bundled_table", dict)  # as if the table predates the model
    assert PriceBook(Settings()).price("gpt-4o") is None
    fallback = PriceBook(Settings(litellm_price_fallback=True)).price("gpt-4o")
    assert fallback is not None and fallback.output_per_mtok == 10.0


def test_a_missing_table_file_means_unknown_prices_not_a_crash(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(price_table, "TABLE_PATH", tmp_path / "absent.json")
    price_table.bundled_table.cache_clear()
    try:
        assert price_table.bundled_table() == {}
    finally:
        price_table.bundled_table.cache_clear()
