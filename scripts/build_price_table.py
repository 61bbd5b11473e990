"""Rebuild `core/data/prices.json` from the price map bundled with the installed litellm.

Run after upgrading litellm and commit the result: `python scripts/build_price_table.py` (or `--check`
to exit 1 when the committed table differs from what the installed litellm would give). litellm is not
imported: its bundled `model_prices_and_context_window_backup.json` is read as a file.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import PackageNotFoundError, version

import orjson

from core.price_table import TABLE_PATH, compact_rows, litellm_map_path


def build() -> bytes:
    """The table's bytes: one sorted row per priced model, stable across runs."""
    path = litellm_map_path()
    if path is None:
        raise SystemExit("litellm is not installed, or it ships no bundled price map")
    try:
        litellm_version = version("litellm")
    except PackageNotFoundError:
        litellm_version = "unknown"
    source = f"litellm {litellm_version} {path.name}"
    units = "USD per million tokens: [input, output, cached_input, cache_write]"
    prices = compact_rows(orjson.loads(path.read_bytes()))
    # One row per line keeps diffs readable when litellm changes a price.
    lines = [f"  {orjson.dumps(name).decode()}: {orjson.dumps(row).decode()}" for name, row in prices.items()]
    head = f'{{\n  "source": {orjson.dumps(source).decode()},\n  "units": {orjson.dumps(units).decode()},\n'
    return (head + '  "prices": {\n  ' + ",\n  ".join(lines) + "\n  }\n}\n").encode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the committed table is out of date")
    args = parser.parse_args(argv)
    fresh = build()
    if args.check:
        current = TABLE_PATH.read_bytes() if TABLE_PATH.is_file() else b""
        if current != fresh:
            print(f"{TABLE_PATH} is out of date; run python scripts/build_price_table.py", file=sys.stderr)
            return 1
        return 0
    TABLE_PATH.parent.mkdir(parents=True, exist_ok=True)
    TABLE_PATH.write_bytes(fresh)
    print(f"wrote {len(orjson.loads(fresh)['prices'])} prices to {TABLE_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
