"""Results on stdout, one mechanism for every command (`RowWriter` / `emit`): result rows
become a rich table (terminal), TSV with a header (pipe), CSV (RFC 4180's quoting, LF line
ends) or JSON lines (`--format json`); `--no-header` drops the TSV/CSV header line. A reader that goes away
(`| head -1`) stops the command quietly; any other write fault is one error line.

rich is imported only where it draws a table: a command in a pipe does not pay for it.
"""

from __future__ import annotations

import contextlib
import csv
import math
import sys
from typing import Any, Iterable, Iterator, Sequence

from rec.console import _devnull
from rec.errors import ReaderGone, RecError, UsageError
from rec.jsontext import dumps

FORMATS = ("auto", "table", "tsv", "csv", "json")
_state = {"header": True}


def set_header(header: bool) -> None:
    """False (`--no-header`): TSV and CSV output start with the first row."""
    _state["header"] = header


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


# Python's text layer hands a text longer than its chunk (8 KiB) to the byte buffer in one
# write and ignores the count written: a pipe whose reader goes away during that write
# takes part of it, no error is raised, and the rest is dropped (exit 0, the output cut
# short). Slices that fit the buffer (at most 4 bytes a character) are each buffered whole
# or meet EPIPE when the buffer is flushed.
SLICE = 2048


def write_whole(text: str) -> None:
    """`text` to stdout, all of it or an error (BrokenPipeError when the reader went away)."""
    for start in range(0, len(text), SLICE):
        sys.stdout.write(text[start:start + SLICE])


def resolve_format(fmt: str) -> str:
    given, fmt = fmt, fmt.strip().lower()  # --format TSV is tsv
    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {given!r}: choose one of {', '.join(FORMATS)}")
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
        if value == 0:  # -0.0 is 0: _text_column keys 0.0 and -0.0 as one, the first seen
            value = 0.0  # deciding their text ('-0' for a user asked beside another)
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
    if kinds == {float}:  # (stars, scores): keyed by the value alone, each formatted once,
        # the first of equals (0.0 and -0.0) as below; a float's text has no tab or newline
        cells = {v: _text_cell(v) for v in dict.fromkeys(values)}
        return list(map(cells.__getitem__, values))
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
                write_whole("\n".join(map("\t".join, zip(*cells))) + "\n")

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
        write_whole(render(self.columns, self._rows, self.layout, self.title, width,
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


def flat_items(obj: dict, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(key, value) of `obj` with a nested object's values under dotted keys
    (channels.ease.hr@10): one readable row each in the flat formats, not a Python dict."""
    for key, value in obj.items():
        if isinstance(value, dict) and value:
            yield from flat_items(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def emit_object(obj: dict, fmt: str = "auto", title: str | None = None) -> None:
    """One result object (e.g. metrics): key/value rows for people (a nested object's values
    under dotted keys), one JSON line for json."""
    fmt = resolve_format(fmt)
    if fmt == "json":
        with writing_results():
            sys.stdout.write(dumps(obj) + "\n")
            sys.stdout.flush()
        return
    emit(({"key": k, "value": v} for k, v in flat_items(obj)), ["key", "value"], fmt, title)
