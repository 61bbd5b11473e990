"""The `tollgate` console command.

Subcommands are entry points in the `tollgate.commands` group, each a module with
`add_arguments(parser)`, `run(args) -> int` and a one-line docstring. Only the chosen subcommand's module
is imported, so `tollgate serve` never pays for the harness or the dashboard and `core` imports no app.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import entry_points
from types import ModuleType

from core.errors import TollgateError
from core.offline import apply_offline_env


def _commands() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group="tollgate.commands")}


def _summary(module: ModuleType) -> str:
    doc = (module.__doc__ or "").strip()
    # argparse %-formats help strings.
    return doc.splitlines()[0].replace("%", "%%") if doc else ""


def build_parser(command: str | None, commands: dict[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tollgate", description="Evaluate, gate and serve LLM features.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Import only the chosen command; `tollgate --help` imports them all to show their summaries.
    names = [command] if command in commands else sorted(commands)
    for name in names:
        module = importlib.import_module(commands[name])
        summary = _summary(module)
        child = sub.add_parser(name, help=summary, description=summary)
        module.add_arguments(child)
        child.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; a `TollgateError` becomes one line on stderr and exit status 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    apply_offline_env()
    commands = _commands()
    first = next((arg for arg in argv if not arg.startswith("-")), None)
    parser = build_parser(first, commands)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args._module.run(args) or 0)
    except TollgateError as exc:
        print(f"tollgate {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
