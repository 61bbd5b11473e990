"""Name, list, export and import the baseline runs that later runs are compared against."""

from __future__ import annotations

import argparse

from harness.commands import add_config_argument, open_store
from harness.store import LATEST, RunStore, is_file_ref, read_run_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    save = actions.add_parser("save", help="point baseline NAME at a run (default: the latest finished run)")
    save.add_argument("name", metavar="NAME")
    save.add_argument("--run", default=LATEST, help="run id, label, baseline name, latest-on-branch or .json file")
    save.add_argument("--note", help="why this run is the baseline")
    actions.add_parser("list", help="list the baselines")
    export = actions.add_parser("export", help="write a baseline (or any run) to a JSON file to commit")
    export.add_argument("ref", metavar="NAME|RUN")
    export.add_argument("--out", required=True, metavar="FILE", help="e.g. suites/baselines/main.json")
    export.add_argument("--slim", action="store_true", help="leave out raw response bodies (smaller file)")
    load = actions.add_parser("import", help="import a run from a JSON file, optionally naming it a baseline")
    load.add_argument("file", metavar="FILE")
    load.add_argument("--name", help="baseline name (default: the name stored in the file, if any)")
    for child in (save, export, load, actions.choices["list"]):
        add_config_argument(child)


def run(args: argparse.Namespace) -> int:
    store = open_store(args)
    action = {"save": _save, "list": _list, "export": _export, "import": _import}[args.action]
    action(store, args)
    return 0


def _save(store: RunStore, args: argparse.Namespace) -> None:
    run_id = store.import_run_file(args.run) if is_file_ref(args.run) else store.resolve(args.run)
    baseline = store.save_baseline(args.name, run_id, args.note)
    print(f"baseline {baseline.name!r} -> run {baseline.run_id}")


def _list(store: RunStore, args: argparse.Namespace) -> None:
    rows = [("name", "run", "label", "branch", "commit", "saved", "note")]
    for baseline in store.list_baselines():
        meta = store.get_run(baseline.run_id)
        rows.append((
            baseline.name, baseline.run_id[:8], meta.label or "-", meta.git_branch or "-",
            (meta.git_commit or "-")[:8], baseline.created_at.strftime("%Y-%m-%d %H:%M"), baseline.note or "",
        ))
    if len(rows) == 1:
        print("no baselines saved (tollgate baseline save NAME)")
        return
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def _export(store: RunStore, args: argparse.Namespace) -> None:
    run_id = store.resolve(args.ref)
    named = args.ref if any(b.name == args.ref for b in store.list_baselines()) else None
    path = store.export_run_file(run_id, args.out, include_raw=not args.slim, baseline=named)
    print(f"run {run_id} written to {path}")


def _import(store: RunStore, args: argparse.Namespace) -> None:
    data = read_run_file(args.file)
    run_id = store.import_run(data)
    name = args.name or data.get("baseline")
    if name:
        store.save_baseline(name, run_id, f"imported from {args.file}")
        print(f"run {run_id} imported as baseline {name!r}")
    else:
        print(f"run {run_id} imported")
