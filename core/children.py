"""Child processes that die with the process that owns them.

Every process Tollgate starts (the sidecar a pytest session needs, the embedded llama.cpp server, the
traffic writer, Streamlit) is a Python module run through this one as `python -m core.children ...
MODULE ARGS`. Before running MODULE (in the same process, with `runpy`) the child arms two watches:

- a pipe from the parent: the parent keeps the only write end open for its whole life (never inherited
  by anything it starts), so the read end in the child sees EOF the moment the parent dies, however it
  dies (SIGKILL included). Event-driven, portable, and it covers grandchildren, since each level starts
  its own children through here.
- on Linux, `PR_SET_PDEATHSIG` as well, but only when the parent starts the child from its main thread:
  the kernel sends the death signal when the *thread* that forked the child exits, so a child started
  from a short-lived thread would be killed by mistake.

Programs that are not Python modules (nginx, wrk, another interpreter) are started by `popen`, which arms
`PR_SET_PDEATHSIG` and then execs the program: Linux only, and only for children started from the main
thread, since no watch thread survives the exec.

When either fires, the child gets `signal` (SIGTERM by default, so it shuts down as it would for an
operator) and, if it is still running `kill_after_s` later, SIGKILL. A process that must outlive a worker
(the sidecar shared by pytest-xdist workers belongs to the controller) watches `owner_pid` instead.
A fork of the parent (without exec) closes its copy of the write end at once (`os.register_at_fork`).
Limits: a child whose module ignores `signal` lives until `kill_after_s`; a process that daemonises
itself (double fork) escapes both watches.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_PR_SET_PDEATHSIG = 1
_OWNER_POLL_S = 0.5  # only where pidfd_open is missing (not Linux): how often an owner's pid is checked
_NO_KILL = "-"
_EXEC = "--exec"  # in place of a module: exec the program that follows


@dataclass(frozen=True)
class OnParentDeath:
    """What a child does when its parent (or `owner_pid`) dies."""

    signal: int | None = signal.SIGTERM  # None: the child ends itself (e.g. on its own pipe's EOF)
    kill_after_s: float | None = 30.0  # SIGKILL if still running this long after `signal`; None: never
    owner_pid: int | None = None  # watch this process instead of the parent (None: the parent)


_lock = threading.Lock()
_pipe: tuple[int, int] | None = None


def _forget_pipe_in_fork() -> None:
    # A fork (without exec) must not hold our write end: our children would then outlive us until it exits.
    # The read end stays open: a child being started (preexec_fn runs this too) may be about to inherit it.
    global _pipe
    if _pipe is not None:
        try:
            os.close(_pipe[1])
        except OSError:
            pass
        _pipe = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pipe_in_fork)


def _watch_fd() -> int:
    """The read end of this process's parent-watch pipe; the write end stays open until we exit."""
    global _pipe
    with _lock:
        if _pipe is None:
            _pipe = os.pipe()  # both ends non-inheritable: only `pass_fds` hands the read end on
        return _pipe[0]


def module_command(module: str, args: Sequence[str], on_death: OnParentDeath) -> tuple[list[str], int]:
    """The command line that runs `python -m module args` under the watch, and the fd to pass to it."""
    fd = _watch_fd()
    owner = on_death.owner_pid if on_death.owner_pid not in (None, os.getpid()) else None
    pdeathsig = owner is None and threading.current_thread() is threading.main_thread()
    kill_after = _NO_KILL if on_death.kill_after_s is None else repr(on_death.kill_after_s)
    signum = 0 if on_death.signal is None else int(on_death.signal)
    # The parent's pid, so the child can tell whether we died before it armed the death signal.
    parent = str(os.getpid()) if pdeathsig and signum else "0"
    watch = [str(fd), str(signum), kill_after, parent, str(owner or 0)]
    return [sys.executable, "-m", "core.children", *watch, module, *args], fd


def popen_module(
    module: str, args: Sequence[str] = (), *, on_death: OnParentDeath = OnParentDeath(), **kwargs: Any
) -> subprocess.Popen[Any]:
    """`subprocess.Popen` of `python -m module args` that dies with this process (or `on_death.owner_pid`)."""
    command, fd = module_command(module, args, on_death)
    kwargs["pass_fds"] = (*kwargs.get("pass_fds", ()), fd)
    return subprocess.Popen(command, **kwargs)


def popen(
    command: Sequence[str], *, on_death: OnParentDeath = OnParentDeath(), **kwargs: Any
) -> subprocess.Popen[Any]:
    """`subprocess.Popen` of any program, with the parent-death signal armed (Linux) before it is exec'd."""
    wrapper, fd = module_command(_EXEC, command, on_death)
    kwargs["pass_fds"] = (*kwargs.get("pass_fds", ()), fd)
    return subprocess.Popen(wrapper, **kwargs)


async def create_module_subprocess(
    module: str, args: Sequence[str] = (), *, on_death: OnParentDeath = OnParentDeath(), **kwargs: Any
) -> asyncio.subprocess.Process:
    """`asyncio.create_subprocess_exec` of `python -m module args` that dies with this process."""
    command, fd = module_command(module, args, on_death)
    kwargs["pass_fds"] = (*kwargs.get("pass_fds", ()), fd)
    return await asyncio.create_subprocess_exec(*command, **kwargs)


# --- the child's side -------------------------------------------------------------------------------


def set_parent_death_signal(signum: int) -> bool:
    """Ask Linux to send `signum` to this process when its parent thread exits; False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _wait_for_eof(fd: int) -> None:
    while True:
        try:
            if not os.read(fd, 1):
                return
        except OSError:
            return  # the fd is unusable: treat as gone rather than watch nothing


def _wait_for_exit(pid: int) -> None:
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = -1
    if pidfd >= 0:
        select.select([pidfd], [], [])  # readable once the process has exited
        return
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        except PermissionError:
            pass
        time.sleep(_OWNER_POLL_S)  # no event to wait on without pidfd: poll


def _watch(fd: int, owner_pid: int, signum: int, kill_after_s: float | None) -> None:
    if owner_pid:
        _wait_for_exit(owner_pid)
    else:
        _wait_for_eof(fd)
    if signum:
        os.kill(os.getpid(), signum)
    if kill_after_s is not None:
        time.sleep(kill_after_s)  # the grace period the child has to shut down cleanly
        os.kill(os.getpid(), signal.SIGKILL)


def main(argv: Sequence[str]) -> None:
    """`python -m core.children FD SIGNAL KILL_AFTER_S PARENT_PID OWNER_PID MODULE [ARGS...]`.

    PARENT_PID 0: no death signal; OWNER_PID 0: watch the parent's pipe, not another process.
    """
    if len(argv) < 6:
        sys.exit(
            "usage: python -m core.children FD SIGNAL KILL_AFTER_S PARENT_PID OWNER_PID MODULE [ARGS...]"
        )
    fd, signum, parent_pid, owner_pid = int(argv[0]), int(argv[1]), int(argv[3]), int(argv[4])
    kill_after_s = None if argv[2] == _NO_KILL else float(argv[2])
    module, args = argv[5], list(argv[6:])
    os.set_inheritable(fd, False)  # our own children get their own pipe from us, never this one
    if parent_pid and set_parent_death_signal(signum) and os.getppid() != parent_pid:
        os.kill(os.getpid(), signum)  # the parent died before the signal was armed
    if module == _EXEC:
        os.close(fd)
        for name in ("SIGPIPE", "SIGXFSZ"):  # ignored by Python; the program gets the usual defaults
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), signal.SIG_DFL)
        os.execvp(args[0], args)
    threading.Thread(
        target=_watch, args=(fd, owner_pid, signum, kill_after_s), name="tollgate-parent-watch", daemon=True
    ).start()
    import runpy

    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
