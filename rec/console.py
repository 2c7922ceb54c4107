"""What the user sees on stderr: logs, warnings, the one error line, progress, the live
epoch table (results go to stdout through rec.results).

rich is imported only where it draws something (a table, a bar, a terminal): a command in a
pipe does not pay for it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from typing import TYPE_CHECKING, Callable, Iterator

from rec.errors import RecError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

_state = {"quiet": False, "verbose": False}


def set_quiet(quiet: bool) -> None:
    _state["quiet"] = quiet


def set_verbose(verbose: bool) -> None:
    """-v/--verbose: debug lines on stderr, and a bug's full traceback (as REC_DEBUG=1)."""
    _state["verbose"] = verbose


def is_verbose() -> bool:
    return _state["verbose"]


def is_quiet() -> bool:
    return _state["quiet"]


def err_console() -> "Console":
    # Built on demand so it follows sys.stderr when tests swap it.
    from rich.console import Console

    class StderrConsole(Console):
        def on_broken_pipe(self) -> None:
            # rich's own ends the process (SystemExit) and points stdout at /dev/null: a
            # closed stderr must stop neither the work nor its results (see _messages)
            raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))

    return StderrConsole(file=sys.stderr, highlight=False, soft_wrap=True)


# --- faults of the two streams ----------------------------------------------------------------


def _devnull():
    return open(os.devnull, "w", encoding="utf-8")


@contextlib.contextmanager
def _messages() -> Iterator[None]:
    """Around every write to stderr: logs are not worth stopping the work for, so a stderr
    that fails (a closed pipe, a full device) is swapped for /dev/null and the work goes on;
    the exit status still tells how the command ended."""
    try:
        yield
    except OSError:
        sys.stderr = _devnull()


def check_streams() -> None:
    """At start: a closed stdout (`rec ... >&-`) is refused in one line before any work (the
    results would go nowhere, and the first file opened would take its descriptor); a
    closed stderr becomes /dev/null, so that messages never land among the results."""
    if sys.stderr is None:
        sys.stderr = _devnull()
    if sys.stdout is None:
        raise RecError("standard output is closed: send it to a file or to /dev/null "
                       "(`> /dev/null`) instead of closing it")


def _whole_line(text: str) -> None:
    """`text` and its newline in one write: print() writes them apart, and a signal between
    the two (Python runs its handler between any two calls) would leave the next line,
    the error that says how the command stopped, glued to this one."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _stderr_line(message: str, label: str = "", style: str = "") -> None:
    """One line on stderr: plain text in a pipe or a file, `label` styled on a terminal."""
    with _messages():
        if not sys.stderr.isatty():
            _whole_line(label + message)
            return
        from rich.markup import escape

        styled = f"[{style}]{escape(label)}[/{style}]" if label else ""
        err_console().print(styled + escape(message))


def log(message: str) -> None:
    """Informational line on stderr (silenced by --quiet)."""
    if not is_quiet():
        _stderr_line(message)


def debug(message: str) -> None:
    """A `debug: ...` line on stderr, with -v/--verbose only."""
    if is_verbose():
        _stderr_line(message, "debug: ", "dim")


def warn(message: str) -> None:
    """Warning on stderr (never silenced)."""
    _stderr_line(message, "warning: ", "yellow")


def error_line(message: str) -> None:
    """The one-line error a failing command prints before exiting non-zero."""
    with _messages():
        _whole_line(f"error: {message}")


def show_table(table: "Table") -> None:
    """A summary table for people: stderr, skipped under --quiet."""
    if not is_quiet():
        with _messages():
            err_console().print(table)


def progress(kind: str = "items", transient: bool = False) -> "Progress":
    """A rich progress bar on stderr; `kind="bytes"` shows size, speed and time remaining,
    items show the count, elapsed and remaining time (when the total is known), "steps" the
    same without the count; a transient one is erased when it ends."""
    from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress,
                               TaskProgressColumn, TextColumn, TimeElapsedColumn,
                               TransferSpeedColumn)

    if kind == "bytes":
        columns = [TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                   TransferSpeedColumn(), remaining_column()]
    else:  # "steps": a share of the work, no count
        columns = [TextColumn("{task.description}"), BarColumn(),
                   *([MofNCompleteColumn()] if kind == "items" else []),
                   TaskProgressColumn(), TimeElapsedColumn(), remaining_column()]
    console = err_console()
    return Progress(*columns, console=console, transient=transient,
                    disable=is_quiet() or not console.is_terminal)


@contextlib.contextmanager
def steps(title: str, costs: dict[str, float]) -> Iterator[Callable[..., None]]:
    """Progress through a command's steps, for work that shows nothing else while it runs
    (`rec evaluate`): yields `step(name, plan=None)`, called as each step starts. `costs`
    gives each step's share of the time (measured), so the bar moves with the time and rich
    can tell the time remaining; a step may bring a new `plan` (its costs and those after
    it, replacing `costs`) when the work turns out to be of another kind; `step.part(i, n)`
    moves the bar within the current step. On a terminal only (stderr), not under --quiet;
    erased when it ends."""
    with progress("steps", transient=True) as bar:
        task = bar.add_task(title, total=sum(costs.values()))
        done: list[float] = []

        def step(name: str, plan: dict[str, float] | None = None) -> None:
            nonlocal costs
            if plan is not None:
                costs = plan
                bar.update(task, total=sum(done) + sum(plan.values()))
            bar.update(task, completed=sum(done), description=f"{title}: {name}")
            done.append(costs[name])

        def part(finished: int, of: int) -> None:
            """`finished` of the current step's `of` equal parts are done (the rank stage's
            blocks of users): the bar moves within a long step instead of waiting on it."""
            if done:
                bar.update(task, completed=sum(done[:-1]) + done[-1] * finished / max(of, 1))
        step.part = part
        yield step


def remaining_column():
    """rich's time remaining, shown only for a task whose total is known."""
    from rich.progress import TimeRemainingColumn
    from rich.text import Text

    class Remaining(TimeRemainingColumn):
        def render(self, task):
            return super().render(task) if task.total is not None else Text("")

    return Remaining()


class EpochDisplay:
    """The training stages' live view on a terminal: the epoch table (rebuilt by
    `table_fn(history, title)`) with the current epoch's progress bar under it, in one rich
    Live (two would fight over the screen). Elsewhere it shows nothing and `update` returns
    False, so the caller logs a line per epoch instead. `unit` is "batches" or "samples"."""

    def __init__(self, title: str, history: list[dict], table_fn, unit: str = "batches"):
        self.title, self.table_fn, self.live, self.task = title, table_fn, None, None
        if not is_quiet() and err_console().is_terminal:
            from rich.live import Live
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
            from rich.progress import TimeElapsedColumn

            count = (MofNCompleteColumn() if unit == "batches"
                     else TextColumn("{task.completed:,.0f} " + unit))
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), count,
                                TimeElapsedColumn(), remaining_column())
            self.live = Live(self._view(history), console=err_console(), refresh_per_second=8)
            self.live.start()

    def _view(self, history: list[dict]):
        from rich.console import Group

        return Group(self.table_fn(history, self.title), self.bar)

    def epoch_started(self, epoch: int, total: int | None) -> None:
        if self.live is not None:
            if self.task is not None:
                self.bar.remove_task(self.task)
            self.task = self.bar.add_task(f"epoch {epoch}", total=total)

    def advance(self, n: int = 1) -> None:
        if self.live is not None:
            self.bar.advance(self.task, n)

    def update(self, history: list[dict]) -> bool:
        """Show the finished epoch; False when there is no live view to show it in."""
        if self.live is None:
            return False
        self.bar.remove_task(self.task)
        self.task = None
        self.live.update(self._view(history))
        return True

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()


def epoch_table(history: list[dict], title: str, columns: dict[str, str],
                monitor) -> "Table":
    """The live table: a row per epoch, the best value of the monitored metric starred. It
    fits 80 columns (a space between columns; a value of 100 or more, such as a summed loss,
    with one decimal), where rich would cut values short ("385.36…") and wrap the star onto
    a line of its own. `monitor`: rec.engine.trainer.Monitor (its key and best)."""
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, padding=0, show_edge=False)
    for col in ("epoch", *columns.values(), "samples/s", "elapsed"):
        table.add_column(col, justify="right", no_wrap=True)
    best = monitor.best([h[monitor.key] for h in history])
    for h in history:
        cells = [(f"{h[k]:.4f}" if abs(h[k]) < 100 else f"{h[k]:.1f}")
                 + (" *" if k == monitor.key and h[k] == best else "") for k in columns]
        table.add_row(str(h["epoch"]), *cells, f"{h['samples_per_s']:,.0f}",
                      f"{h['elapsed']:.1f}s")
    return table


def epoch_line(row: dict, columns: dict[str, str], improved: bool) -> str:
    """The epoch's log line where there is no live table (stderr not a terminal)."""
    cells = "  ".join(f"{name} {row[k]:.4f}" for k, name in columns.items())
    return (f"epoch {row['epoch']}: {cells}  {row['samples_per_s']:,.0f} samples/s  "
            f"{row['elapsed']:.1f}s" + ("  *best" if improved else ""))
