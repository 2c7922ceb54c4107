"""No process rec starts outlives it (Linux): a child gets SIGTERM when its parent dies.

`rec train --nproc N` starts paddle.distributed.launch, which starts the N workers; `rec
pipeline` starts each stage. Killed with SIGKILL, rec cannot stop them, and they would go on
training and writing into a folder whose lock (rec.storage.lock, held by rec) the kernel has just
released: a second run could start beside them and the two would mix their files. The
kernel's PR_SET_PDEATHSIG (prctl) sends the child a signal when its parent dies instead.

A pipeline's stage gets SIGTERM, which a rec command takes as a clean stop (rec.process.interrupts).
The launcher and its workers get SIGKILL: paddle's launcher answers SIGTERM by passing it on
and waiting up to 30 s for its workers, and a worker blocked in the process group's
rendezvous or a collective (C++) handles it only when that returns (measured: 30-35 s, the
lock long free). Killed, they leave what any kill -9 leaves, which rec.storage.recovery repairs.

The kernel sends it when the parent *thread* that forked the child ends, so children are
started from the main thread (which lives as long as the process). A parent that died before
the child asked for the signal sends none: the child checks its parent after asking, and
stops at once if that parent is already gone. Elsewhere than Linux this does nothing.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from typing import Callable, Optional

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
LAUNCHED_BY = "REC_LAUNCHED_BY"  # set for the launcher: the pid of the rec that started it


def _prctl():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def child_setup(sig: int = signal.SIGTERM) -> Optional[Callable[[], None]]:
    """A Popen preexec_fn that makes the child get `sig` when this process dies (None where
    that cannot be done). Everything is looked up here, in the parent: after the fork the
    child only calls prctl, getppid and kill."""
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def setup() -> None:
        if prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0 and os.getppid() != parent:
            os.kill(os.getpid(), sig)  # the parent died between fork and prctl

    return setup


def proc_state(pid: int) -> Optional[tuple[str, int]]:
    """(state letter, parent pid) of a process, from /proc/PID/stat; None if it is gone or
    unreadable. The command name before them is in parentheses and may hold anything, so
    the fields are read after its last ")"."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state, ppid = f.read().rsplit(")", 1)[1].split()[:2]
        return state, int(ppid)
    except (OSError, IndexError, ValueError):
        return None


def _parent_of(pid: int) -> Optional[int]:
    found = proc_state(pid)
    return None if found is None else found[1]


def worker_dies_with_launcher(sig: int = signal.SIGKILL) -> None:
    """In a worker of paddle.distributed.launch (which starts it without a preexec_fn of
    ours): get `sig` when the launcher dies. Started by `rec --nproc`, whose pid the launcher
    was given (LAUNCHED_BY), a worker whose parent is no longer that rec's child stops now:
    the launcher, or rec, died before the worker asked."""
    prctl = _prctl()
    if prctl is None or prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        return
    started_by = os.environ.get(LAUNCHED_BY, "")
    if started_by.isdigit():
        grandparent = _parent_of(os.getppid())
        if grandparent is not None and grandparent != int(started_by):
            os.kill(os.getpid(), sig)
