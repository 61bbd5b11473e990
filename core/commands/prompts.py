"""List, show, render and diff the versioned prompt files."""

from __future__ import annotations

import argparse
import difflib
import subprocess
from pathlib import Path
from typing import Any

import orjson
import yaml

from core.prompts import PromptError, PromptFile, PromptRegistry, content_version, render, response_format

GIT_PREFIX = "git:"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root", default="prompts", help="directory holding the .prompt files (default: prompts)"
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="name, version, model and tags of every prompt")
    show = actions.add_parser("show", help="the header and sections of one prompt")
    show.add_argument("name")
    rendered = actions.add_parser("render", help="render one prompt into chat messages (JSON)")
    rendered.add_argument("name")
    rendered.add_argument("--var", action="append", default=[], metavar="K=V", help="a variable (repeatable)")
    rendered.add_argument("--vars-file", type=Path, help="a JSON object of variables (--var wins)")
    rendered.add_argument("--variant", help="apply a variant, e.g. a locale")
    diff = actions.add_parser("diff", help="unified diff of a prompt against git HEAD or another file")
    diff.add_argument("name")
    diff.add_argument(
        "--against",
        default="git:HEAD",
        metavar="git:REV|FILE",
        help="git revision or file (default: git:HEAD)",
    )


def run(args: argparse.Namespace) -> int:
    registry = PromptRegistry(args.root)
    if args.action == "list":
        print_table(registry.list())
    elif args.action == "show":
        print(show_text(registry.get(args.name)), end="")
    elif args.action == "render":
        variables = read_variables(args.var, args.vars_file)
        prompt = registry.get(args.name)
        print(render_json(prompt, variables, args.variant))
    else:
        print(diff_text(registry.get(args.name), args.against), end="")
    return 0


def print_table(prompts: list[PromptFile]) -> None:
    """Print one aligned row per prompt."""
    rows = [("NAME", "VERSION", "MODEL", "TAGS")]
    rows += [(p.name, p.version, p.model or "-", ", ".join(p.tags) or "-") for p in prompts]
    widths = [max(len(row[col]) for row in rows) for col in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[3])


def show_text(prompt: PromptFile) -> str:
    """The header as YAML, then every section under its marker."""
    header = {key: value for key, value in prompt.header().items() if value not in (None, "", [], {})}
    parts = [f"# {prompt.path}\n", yaml.safe_dump(header, sort_keys=False, allow_unicode=True, width=110)]
    for name, body in prompt.sections.items():
        parts.append(f"\n[{name}]\n{body}\n")
    return "".join(parts)


def read_variables(pairs: list[str], vars_file: Path | None) -> dict[str, Any]:
    """Variables from a JSON file, then `--var k=v` pairs (strings) on top."""
    variables: dict[str, Any] = {}
    if vars_file is not None:
        try:
            loaded = orjson.loads(vars_file.read_bytes())
        except OSError as exc:
            raise PromptError(f"{vars_file}: cannot read variables file ({exc.strerror})") from exc
        except orjson.JSONDecodeError as exc:
            raise PromptError(f"{vars_file}: invalid JSON ({exc})") from exc
        if not isinstance(loaded, dict):
            raise PromptError(f"{vars_file}: the variables file must hold a JSON object")
        variables.update(loaded)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise PromptError(f"--var {pair!r}: expected NAME=VALUE")
        variables[key.strip()] = value
    return variables


def render_json(prompt: PromptFile, variables: dict[str, Any], variant: str | None) -> str:
    """The rendered messages and call settings as indented JSON."""
    rendered = render(prompt, variables, variant)
    document = {
        "name": rendered.name,
        "version": rendered.version,
        "variant": rendered.variant,
        "model": rendered.model,
        "parameters": rendered.parameters,
        "messages": rendered.messages,
        "response_format": response_format(rendered),
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode()


def diff_text(prompt: PromptFile, against: str) -> str:
    """Both versions, then a unified diff from `against` (a git revision or a file) to the current file."""
    if against.startswith(GIT_PREFIX):
        revision = against[len(GIT_PREFIX) :] or "HEAD"
        old_bytes, old_name = git_show(prompt.path, revision), f"{revision}:{prompt.path}"
    else:
        other = Path(against)
        try:
            old_bytes, old_name = other.read_bytes(), str(other)
        except OSError as exc:
            raise PromptError(f"{other}: cannot read ({exc.strerror})") from exc
    new_bytes = prompt.source.encode()
    old_version, new_version = content_version(old_bytes), prompt.version
    header = f"{old_name} version {old_version}\n{prompt.path} version {new_version}\n"
    if old_bytes == new_bytes:
        return header + "no differences\n"
    lines = difflib.unified_diff(
        old_bytes.decode("utf-8", errors="replace").splitlines(keepends=True),
        new_bytes.decode().splitlines(keepends=True),
        fromfile=f"{old_name} ({old_version})",
        tofile=f"{prompt.path} ({new_version})",
    )
    return header + "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def git_show(path: Path, revision: str) -> bytes:
    """The bytes of `path` at `revision`, read with git from the file's own directory."""
    directory = path.parent.resolve()
    if _git(directory, "rev-parse", "--git-dir").returncode != 0:
        raise PromptError(f"{path}: not inside a git repository (cannot diff against {revision})")
    if _git(directory, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}").returncode != 0:
        raise PromptError(f"{path}: unknown git revision {revision!r}")
    # `REV:./name` is resolved relative to the directory git runs in, so no repository root is needed.
    spec = f"{revision}:./{path.name}"
    if _git(directory, "cat-file", "-e", spec).returncode != 0:
        raise PromptError(f"{path}: not in git {revision} (a new file?)")
    done = _git(directory, "show", spec)
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise PromptError(f"git show {spec} failed: {message[0] if message else done.returncode}")
    return done.stdout


def _git(directory: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            ["git", "-C", str(directory), *args], capture_output=True, check=False, timeout=30
        )
    except FileNotFoundError as exc:
        raise PromptError("git is not installed (needed for --against git:REV)") from exc
    except subprocess.TimeoutExpired as exc:
        raise PromptError(f"git {args[0]} timed out in {directory}") from exc
