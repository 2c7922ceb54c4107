"""SIGTERM ends a command the way Ctrl-C (SIGINT) does: as an exception, so that every
`finally:` runs (a folder being built is removed, a lock released) and the command exits
with 128 + the signal's number (130 for SIGINT, 143 for SIGTERM) after one line.

`rec.stages.guarded` installs the handler around every command; paddle's import replaces it
with paddle's own (which aborts with a C++ report and cleans nothing up), so rec.runtime,
the one module through which paddle is first imported, installs it again (`reinstall`).
`deferred` holds both signals back for the few renames of a folder swap (rec.atomic): an
interruption never falls between them.
"""

from __future__ import annotations

import contextlib
import signal
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
    """After `import paddle`: put back the handler paddle's import replaced, if installed."""
    if _in_main_thread() and signal.getsignal(signal.SIGTERM) is _terminate:
        signal.signal(signal.SIGTERM, _terminate)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """SIGINT and SIGTERM that arrive inside the block take effect when it ends.

    Python runs signal handlers in the main thread whichever thread the signal reached, so
    swapping the handlers (not masking the signal, which paddle's threads would still
    receive) is what defers them."""
    if not _in_main_thread():
        yield
        return
    caught: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: caught.append(signum))
                for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
        if caught:
            handler = previous[caught[0]]
            if callable(handler):
                handler(caught[0], None)
            elif handler != signal.SIG_IGN:  # the default action: stop as the signal does
                signal.raise_signal(caught[0])
