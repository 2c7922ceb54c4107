"""Everything the user sees: logs and progress on stderr, results on stdout.

One mechanism (`RowWriter` / `emit`) turns result rows into a rich table (terminal), TSV with
a header (pipe) or JSON lines (`--format json`), so every command formats results the same way.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any, Iterable, Sequence

from rich.console import Console
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


def _json_value(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


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
            out.write(json.dumps({c: _json_value(row.get(c)) for c in self.columns},
                                 ensure_ascii=False) + "\n")

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
        sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return
    emit(({"key": k, "value": v} for k, v in obj.items()), ["key", "value"], fmt, title)
