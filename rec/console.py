"""Everything the user sees: logs and progress on stderr, results on stdout.

One mechanism (`RowWriter` / `emit`) turns result rows into a rich table (terminal), TSV with
a header (pipe), CSV (RFC 4180) or JSON lines (`--format json`), so every command formats
results the same way; `--no-header` drops the TSV/CSV header line.

rich is imported only where it draws something (a table, a bar, a terminal): a command in a
pipe does not pay for it.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import math
import os
import sys
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

from rec.atomic import dumps
from rec.errors import ReaderGone, RecError, UsageError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

FORMATS = ("auto", "table", "tsv", "csv", "json")
_state = {"quiet": False, "header": True, "verbose": False}


def set_quiet(quiet: bool) -> None:
    _state["quiet"] = quiet


def set_verbose(verbose: bool) -> None:
    """-v/--verbose: debug lines on stderr, and a bug's full traceback (as REC_DEBUG=1)."""
    _state["verbose"] = verbose


def is_verbose() -> bool:
    return _state["verbose"]


def is_quiet() -> bool:
    return _state["quiet"]


def set_header(header: bool) -> None:
    """False (`--no-header`): TSV and CSV output start with the first row."""
    _state["header"] = header


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
def writing_results() -> Iterator[None]:
    """Around every write of results to stdout: a reader that went away (EPIPE, `| head -1`)
    raises ReaderGone (the command stops quietly, exit 141); any other fault (/dev/full, an
    I/O error) one line, exit 1. Either way stdout is swapped for /dev/null, so that Python
    does not fail again flushing it on the way out."""
    try:
        yield
    except BrokenPipeError:
        sys.stdout = _devnull()
        raise ReaderGone() from None
    except OSError as e:
        sys.stdout = _devnull()
        raise RecError(f"cannot write the results to standard output: {e.strerror or e}") from None


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


def _stderr_line(message: str, label: str = "", style: str = "") -> None:
    """One line on stderr: plain text in a pipe or a file, `label` styled on a terminal."""
    with _messages():
        if not sys.stderr.isatty():
            print(label + message, file=sys.stderr, flush=True)
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
        print(f"error: {message}", file=sys.stderr, flush=True)


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
    it, replacing `costs`) when the work turns out to be of another kind. On a terminal
    only (stderr), not under --quiet; erased when it ends."""
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

        yield step


def remaining_column():
    """rich's time remaining, shown only for a task whose total is known."""
    from rich.progress import TimeRemainingColumn
    from rich.text import Text

    class Remaining(TimeRemainingColumn):
        def render(self, task):
            return super().render(task) if task.total is not None else Text("")

    return Remaining()


def resolve_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if fmt == "auto":
        return "table" if sys.stdout.isatty() else "tsv"
    return fmt


def _text_cell(value: Any) -> str:
    """A value as TSV, CSV and the table show it (floats to 6 significant digits)."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.6g}" if abs(value) >= 1e-4 or value == 0 else f"{value:.3e}"
    return str(value)


def _text_column(values: list, tsv: bool) -> list[str]:
    """_text_cell of each value (a TSV cell without tabs or newlines), each distinct value
    formatted once (keyed by its type too: 1, 1.0 and True print differently); a column of
    plain strings or ints goes through whole."""
    kinds = set(map(type, values))
    if kinds == {str}:
        joined = "".join(values) if tsv else ""
        if "\t" in joined or "\n" in joined:
            return [v.replace("\t", " ").replace("\n", " ") for v in values]
        return values
    if kinds == {int}:
        return list(map(str, values))
    cache: dict = {}
    out = []
    for v in values:
        key = (v.__class__, v)
        cell = cache.get(key)
        if cell is None:
            cell = _text_cell(v)
            if tsv:
                cell = cell.replace("\t", " ").replace("\n", " ")
            cache[key] = cell
        out.append(cell)
    return out


class RowWriter:
    """Write result rows to stdout in the chosen format; TSV, CSV and JSON stream row by row.
    `layout` (column -> a rec.texttable layout: KEEP, SHORT, WRAP, NOTE, HIDE, TITLE) fits
    the table to the terminal's width."""

    def __init__(self, columns: Sequence[str], fmt: str = "auto", title: str | None = None,
                 layout: dict[str, str] | None = None):
        self.columns = list(columns)
        self.fmt = resolve_format(fmt)
        self.title = title
        self.layout = layout or {}
        self._rows: list[dict] = []
        self._header_done = not _state["header"]
        self._csv = csv.writer(sys.stdout, lineterminator="\n") if self.fmt == "csv" else None

    def _line(self, cells: list[str]) -> None:
        if self._csv is not None:
            self._csv.writerow(cells)
        else:
            sys.stdout.write("\t".join(cell.replace("\t", " ").replace("\n", " ")
                                       for cell in cells) + "\n")

    def _header(self) -> None:
        if not self._header_done:
            self._line(self.columns)
            self._header_done = True

    def write(self, row: dict) -> None:
        with writing_results():
            if self.fmt == "table":
                self._rows.append(row)
            elif self.fmt in ("tsv", "csv"):
                self._header()
                self._line([_text_cell(row.get(c)) for c in self.columns])
            else:
                sys.stdout.write(dumps({c: row.get(c) for c in self.columns}) + "\n")

    def write_block(self, block: dict[str, list]) -> None:
        """Many rows at once, given as columns (lists of one length; a missing column is
        empty): exactly what write() of each row prints. TSV and CSV format a column at a
        time, each distinct value once (per-row formatting was 42 % of `recommend --all`)."""
        n = len(next(iter(block.values()), []))
        if self.fmt not in ("tsv", "csv"):
            columns = [block.get(c) or [None] * n for c in self.columns]
            for values in zip(*columns):
                self.write(dict(zip(self.columns, values)))
            return
        cells = [_text_column(block.get(c) or [None] * n, self._csv is None)
                 for c in self.columns]
        with writing_results():
            self._header()
            if self._csv is not None:
                self._csv.writerows(zip(*cells))
            elif n:
                sys.stdout.write("\n".join(map("\t".join, zip(*cells))) + "\n")

    def close(self) -> None:
        with writing_results():
            if self.fmt in ("tsv", "csv"):
                self._header()
            if self.fmt == "table":
                self._table()
            sys.stdout.flush()

    def _table(self) -> None:
        import shutil

        from rec.texttable import render

        width = shutil.get_terminal_size((80, 24)).columns
        sys.stdout.write(render(self.columns, self._rows, self.layout, self.title, width,
                                _text_cell))

    def __enter__(self) -> "RowWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()


def emit(rows: Iterable[dict], columns: Sequence[str], fmt: str = "auto",
         title: str | None = None, layout: dict[str, str] | None = None) -> None:
    with RowWriter(columns, fmt, title, layout) as writer:
        for row in rows:
            writer.write(row)


def emit_object(obj: dict, fmt: str = "auto", title: str | None = None) -> None:
    """One result object (e.g. metrics): key/value rows for people, one JSON line for json."""
    fmt = resolve_format(fmt)
    if fmt == "json":
        with writing_results():
            sys.stdout.write(dumps(obj) + "\n")
            sys.stdout.flush()
        return
    emit(({"key": k, "value": v} for k, v in obj.items()), ["key", "value"], fmt, title)


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
