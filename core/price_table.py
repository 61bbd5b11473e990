"""The compact price table: model -> USD per million tokens, shipped as `core/data/prices.json`.

Built by `scripts/build_price_table.py` from the price map litellm bundles
(`model_prices_and_context_window_backup.json`, the map litellm itself uses offline) and committed, so:
- pricing works offline, read-only and without litellm installed (a sidecar-only install);
- loading it takes milliseconds (a few hundred KB of JSON read with orjson), where importing litellm to
  reach the same map takes 4-24 s and ~200 MiB;
- a price change shows up as a reviewed diff when litellm is upgraded and the script is run again.

Each row is `[input, output, cached_input | null, cache_write | null]` in USD per million tokens.
`litellm_map_prices()` reads the installed litellm's bundled map the same way, without importing litellm:
the fallback for models newer than the table (`litellm_price_fallback: true`).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from pathlib import Path
from typing import Any

import orjson

from core.settings import Price

logger = logging.getLogger("tollgate.pricing")

TOKENS_PER_PRICE_UNIT = 1_000_000
TABLE_PATH = Path(__file__).parent / "data" / "prices.json"
LITELLM_MAP_NAME = "model_prices_and_context_window_backup.json"

Row = tuple[float, float, float | None, float | None]


def lookup(table: dict[str, list[Any]], model: str) -> Price | None:
    """The price of `model` in `table`: exact name, then the name without its `provider/` prefix."""
    candidates = [model]
    if "/" in model:
        candidates.append(model.split("/", 1)[1])
    for name in candidates:
        row = table.get(name)
        if row is not None:
            try:
                return Price(
                    input_per_mtok=row[0],
                    output_per_mtok=row[1],
                    cached_input_per_mtok=row[2],
                    cache_write_per_mtok=row[3],
                )
            except (ValueError, IndexError, TypeError):
                logger.warning("price table row for %s is malformed: %r", name, row)
    return None


@functools.cache
def bundled_table() -> dict[str, list[Any]]:
    """The committed compact table (empty, with a warning, if the file is missing or unreadable)."""
    try:
        document = orjson.loads(TABLE_PATH.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        logger.warning("price table %s unavailable: %s", TABLE_PATH, exc)
        return {}
    prices = document.get("prices") if isinstance(document, dict) else None
    return prices if isinstance(prices, dict) else {}


@functools.cache
def litellm_map_table() -> dict[str, list[Any]]:
    """The installed litellm's bundled price map, converted to rows; read as a file, litellm is not imported."""
    path = litellm_map_path()
    if path is None:
        return {}
    try:
        return compact_rows(orjson.loads(path.read_bytes()))
    except (OSError, orjson.JSONDecodeError) as exc:
        logger.warning("litellm price map %s unreadable: %s", path, exc)
        return {}


def litellm_map_path() -> Path | None:
    """Where the installed litellm keeps its bundled price map, found without importing litellm."""
    try:
        spec = importlib.util.find_spec("litellm")
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / LITELLM_MAP_NAME
    return path if path.is_file() else None


def compact_rows(model_map: dict[str, Any]) -> dict[str, list[Any]]:
    """litellm's map (USD per token, many fields) reduced to the rows Tollgate prices with, sorted by model."""
    rows: dict[str, list[Any]] = {}
    for name in sorted(model_map):
        entry = model_map[name]
        if isinstance(entry, dict):
            row = row_from_entry(entry)
            if row is not None:
                rows[name] = list(row)
    return rows


def row_from_entry(entry: dict[str, Any]) -> Row | None:
    """One litellm entry as a row, or None when it has no usable per-token input and output price."""
    per_in = _per_mtok(entry.get("input_cost_per_token"))
    per_out = _per_mtok(entry.get("output_cost_per_token", 0.0 if entry.get("mode") == "embedding" else None))
    if per_in is None or per_out is None:
        return None
    read = _per_mtok(entry.get("cache_read_input_token_cost"))
    write = _per_mtok(entry.get("cache_creation_input_token_cost"))
    return (per_in, per_out, read, write)


def _per_mtok(value: Any) -> float | None:
    """USD per token as USD per million tokens, or None when it is not a price."""
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        return None
    # Rounded so that 2.5e-06 * 1e6 is stored as 2.5, not 2.4999999999999996.
    return round(float(value) * TOKENS_PER_PRICE_UNIT, 9)
