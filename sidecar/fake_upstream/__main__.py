"""`python -m sidecar.fake_upstream --port N`: the same server as `tollgate fake-upstream`."""

from __future__ import annotations

import argparse
import sys

from core.errors import TollgateError
from sidecar.commands import fake_upstream as command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sidecar.fake_upstream", description=command.__doc__)
    command.add_arguments(parser)
    try:
        return command.run(parser.parse_args(argv))
    except TollgateError as exc:
        print(f"fake-upstream: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
