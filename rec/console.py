"""Everything the user sees: logs and progress on stderr, results on stdout.

One mechanism (`RowWriter` / `emit`) turns result rows into a rich table (terminal), TSV with
a header (pipe) or JSON lines (`--format json`), so every command formats results the same way.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Iterable, Sequence

from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from rec.atomic import dumps
from rec.errors import UsageError

FORMATS = ("auto", "table", "tsv", "json")
_state = {"quiet": False}


def set_quiet(quiet: bool) -> None:
    _state["quiet"] = quiet


def is_quiet() -> bool:
    return _state["quiet"]


def err_console() -> Console:
    # Built on demand so it follows sys.stderr when tests swap it.
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def log(message: str) -> None:
    """Informational line on stderr (silenced by --quiet)."""
    if not is_quiet():
        err_console().print(message)


def warn(message: str) -> None:
    """Warning on stderr (never silenced)."""
    err_console().print(f"[yellow]warning:[/yellow] {message}")


def error_line(message: str) -> None:
    """The one-line error a failing command prints before exiting non-zero."""
    print(f"error: {message}", file=sys.stderr)


def show_table(table: Table) -> None:
    """A summary table for people: stderr, skipped under --quiet."""
    if not is_quiet():
        err_console().print(table)


def progress(kind: str = "items") -> Progress:
    """A rich progress bar on stderr; `kind="bytes"` shows size, speed and ETA."""
    if kind == "bytes":
        columns = [TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                   TransferSpeedColumn(), TimeRemainingColumn()]
    else:
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TaskProgressColumn(), TimeElapsedColumn()]
    console = err_console()
    return Progress(*columns, console=console, transient=False,
                    disable=is_quiet() or not console.is_terminal)


def resolve_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if fmt == "auto":
        return "table" if sys.stdout.isatty() else "tsv"
    return fmt


def _tsv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.6g}" if abs(value) >= 1e-4 or value == 0 else f"{value:.3e}"
    return str(value).replace("\t", " ").replace("\n", " ")


class RowWriter:
    """Write result rows to stdout in the chosen format; TSV and JSON stream row by row."""

    def __init__(self, columns: Sequence[str], fmt: str = "auto", title: str | None = None):
        self.columns = list(columns)
        self.fmt = resolve_format(fmt)
        self.title = title
        self._rows: list[dict] = []
        self._header_done = False

    def write(self, row: dict) -> None:
        out = sys.stdout
        if self.fmt == "table":
            self._rows.append(row)
        elif self.fmt == "tsv":
            if not self._header_done:
                out.write("\t".join(self.columns) + "\n")
                self._header_done = True
            out.write("\t".join(_tsv_cell(row.get(c)) for c in self.columns) + "\n")
        else:
            out.write(dumps({c: row.get(c) for c in self.columns}) + "\n")

    def close(self) -> None:
        if self.fmt == "tsv" and not self._header_done:
            sys.stdout.write("\t".join(self.columns) + "\n")
        if self.fmt == "table":
            table = Table(title=self.title)
            for c in self.columns:
                table.add_column(c, overflow="fold")
            for row in self._rows:
                table.add_row(*[_tsv_cell(row.get(c)) for c in self.columns])
            Console(file=sys.stdout, highlight=False).print(table)
        sys.stdout.flush()

    def __enter__(self) -> "RowWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()


def emit(rows: Iterable[dict], columns: Sequence[str], fmt: str = "auto",
         title: str | None = None) -> None:
    with RowWriter(columns, fmt, title) as writer:
        for row in rows:
            writer.write(row)


def emit_object(obj: dict, fmt: str = "auto", title: str | None = None) -> None:
    """One result object (e.g. metrics): key/value rows for people, one JSON line for json."""
    fmt = resolve_format(fmt)
    if fmt == "json":
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
            count = (MofNCompleteColumn() if unit == "batches"
                     else TextColumn("{task.completed:,.0f} " + unit))
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), count,
                                TimeElapsedColumn())
            self.live = Live(self._view(history), console=err_console(), refresh_per_second=8)
            self.live.start()

    def _view(self, history: list[dict]):
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
