"""py-spy profiles of the sidecars under c64 load, and their summary (per-thread share, top functions)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from overhead_measures import wait_for_log_drain, wrk_command
from overhead_processes import LOGGED, Targets

from core.children import popen


def profile_under_load(bench: Targets, seconds: float, folder: Path, prefix: str) -> dict[str, Any]:
    """py-spy (sampling every thread) on each sidecar under the c64 load; collapsed stacks kept in `folder`."""
    summaries: dict[str, Any] = {}
    for name, child in bench.sidecars().items():
        stacks = folder / f"{prefix}-profile-{name}.txt"
        command, env = wrk_command(child.url, threads=2, connections=64, duration_s=seconds + 4)
        load = popen(command, stdout=subprocess.DEVNULL, env=env)
        time.sleep(2)
        record = [
            _py_spy(),
            "record",
            "--pid",
            str(child.process.pid),
            "--duration",
            f"{seconds:g}",
            "--rate",
            "250",
        ]
        subprocess.run(
            [*record, "--threads", "--nonblocking", "--format", "raw", "--output", str(stacks)],
            capture_output=True,
            check=True,
        )
        load.wait()
        if name == LOGGED:
            wait_for_log_drain(child, bench.logged_dir)
        summaries[name] = summarise_stacks(stacks)
        print(f"profile of {name} under c64 ({stacks}):\n{render_profile(summaries[name])}", file=sys.stderr)
    return summaries


def _py_spy() -> str:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else "py-spy"


def summarise_stacks(path: Path, top: int = 20) -> dict[str, Any]:
    """Shares of samples per thread, per function's own time (self) and per function including callees."""
    threads: dict[str, int] = {}
    own: dict[str, int] = {}
    within: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames, samples = stack.split(";"), int(count)
        total += samples
        thread = frames[0].split(": ", 1)[-1]
        threads[thread] = threads.get(thread, 0) + samples
        own[frames[-1]] = own.get(frames[-1], 0) + samples
        for frame in set(frames[1:]):
            within[frame] = within.get(frame, 0) + samples

    def shares(counts: dict[str, int], limit: int) -> list[tuple[str, float]]:
        ranked = sorted(counts.items(), key=lambda item: -item[1])[:limit]
        return [(name, round(100 * samples / max(total, 1), 1)) for name, samples in ranked]

    return {
        "samples": total,
        "threads": shares(threads, 10),
        "self": shares(own, top),
        "inclusive": shares(within, 2 * top),
    }


def render_profile(summary: dict[str, Any]) -> str:
    lines = [
        f"  {summary['samples']} samples; threads: "
        + ", ".join(f"{name} {share}%" for name, share in summary["threads"])
    ]
    lines += [f"  self {share:5.1f}%  {name}" for name, share in summary["self"]]
    return "\n".join(lines)
