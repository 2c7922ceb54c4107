"""SIGTERM ends a command the way Ctrl-C (SIGINT) does: as an exception, so that every
`finally:` runs (a folder being built is removed, a lock released) and the command exits
with 128 + the signal's number (130 for SIGINT, 143 for SIGTERM) after one line.

`rec.stages.stage` installs the handler around every command; paddle's import replaces it
with paddle's own (which aborts with a C++ report and cleans nothing up), so rec.engine.runtime,
the one module through which paddle is first imported, imports it with both signals held
back and installs rec's handler again (`held_during_import`).
A signal reaches whichever thread does not block it: `signals_to_the_main_thread` keeps
the native threads of numpy's OpenBLAS from taking them (paddle's handler would run there).
`deferred` holds both signals back for the few renames of a folder swap (rec.storage.atomic): an
interruption never falls between them.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import signal
import sys
import threading
from typing import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command was (a KeyboardInterrupt, so code that cleans up
    after Ctrl-C cleans up after a kill too)."""

    signum = signal.SIGTERM


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """128 + the signal's number, as a shell reports a command the signal killed."""
    return 128 + int(getattr(interrupt, "signum", signal.SIGINT))


def _terminate(signum, frame) -> None:
    raise Terminated()


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Inside the block, SIGTERM raises Terminated in the main thread."""
    if not _in_main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def reinstall() -> None:
    """After `import paddle`: put back the Python handlers (rec's, or Python's own for
    Ctrl-C) that paddle's import replaced with its own behind Python's back."""
    if not _in_main_thread():
        return
    for s in SIGNALS:
        handler = signal.getsignal(s)
        if callable(handler):
            signal.signal(s, handler)


@contextlib.contextmanager
def _blocked() -> Iterator[None]:
    """SIGINT and SIGTERM blocked in this thread (and in the threads it starts) for the
    block; one that arrived meanwhile is delivered when it ends."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


THREAD_STARTERS = ("numpy",)  # OpenBLAS starts its threads as numpy is imported


class _ImportedBlocked(importlib.abc.MetaPathFinder):
    """The first import of each of `names` runs `_blocked`: the native threads it starts
    never take SIGINT or SIGTERM, which then always reach the main thread."""

    def __init__(self, names) -> None:
        self.names = set(names)

    def find_spec(self, fullname, path, target=None):
        if fullname not in self.names or not _in_main_thread():
            return None
        self.names.discard(fullname)
        if not self.names and self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        run = getattr(spec and spec.loader, "exec_module", None)
        if run is not None:
            def exec_module(module) -> None:
                with _blocked():
                    run(module)

            spec.loader.exec_module = exec_module
        return spec


def signals_to_the_main_thread() -> None:
    """At start-up (rec.cli.main), before anything starts a native thread: a process-wide
    signal goes to any thread that does not block it, so a thread of numpy's OpenBLAS could
    take SIGTERM while the main thread holds it back (`held_during_import`), and paddle's
    handler, installed halfway through its import, would end the process silently."""
    if hasattr(signal, "pthread_sigmask") and THREAD_STARTERS[0] not in sys.modules:
        sys.meta_path.insert(0, _ImportedBlocked(THREAD_STARTERS))


@contextlib.contextmanager
def held_during_import() -> Iterator[None]:
    """SIGINT and SIGTERM blocked for the block (`import paddle`), rec's handlers put back
    (`reinstall`), then unblocked: one that arrived meanwhile reaches rec's handler then.

    Interrupted halfway, paddle's import fails with a misleading ImportError ("Can not
    import paddle core ..."), and between installing its own SIGTERM handler and
    `reinstall` a kill would end the process silently, its lock file left behind. The
    threads the import starts inherit the mask, so later signals reach the main thread."""
    blocked = _in_main_thread() and hasattr(signal, "pthread_sigmask")
    with _blocked() if blocked else contextlib.nullcontext():
        try:
            yield
        finally:
            reinstall()  # before the signals are unblocked


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """SIGINT and SIGTERM that arrive inside the block take effect when it ends (unless it
    ends in an error of its own, which then stops the command instead).

    Python runs signal handlers in the main thread whichever thread the signal reached, so
    swapping the handlers (not masking the signal, which paddle's threads would still
    receive) is what defers them."""
    if not _in_main_thread():
        yield
        return
    caught: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: caught.append(signum))
                for s in SIGNALS}
    failed = False
    try:
        yield
    except BaseException:  # the block's own error stops the command, and is the one told
        failed = True  # (a signal raised over it hid, say, a full disk behind "interrupted")
        raise
    finally:
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
        if caught and not failed:
            handler = previous[caught[0]]
            if callable(handler):
                handler(caught[0], None)
            elif handler != signal.SIG_IGN:  # the default action: stop as the signal does
                signal.raise_signal(caught[0])
