"""Numeric text tables (ratings files) read in line-aligned chunks into preallocated arrays.

A ratings file of MovieLens 25M is ~680 MB of text for 25 million rows. Reading it whole,
replacing its separators and parsing it in one numpy call needs several times the size of
the arrays it yields. Here instead:

1. one streaming pass counts the data lines (blocks of CHUNK_BYTES, newlines counted);
2. the final typed columns are allocated once (e.g. int32 users and movies, float32
   ratings, int64 timestamps);
3. the file is read again in blocks cut after their last newline (the partial line is
   carried into the next block), and each chunk goes through numpy's text parser in one
   call (fast path) into its slice of the columns.

So the peak is the columns plus a few chunk-sized temporaries. A chunk that the fast path
rejects is walked line by line to name the first malformed line, as `path:line`, with line
numbers counted across chunks (and the header). Range checks run per chunk too and quote
the offending line; as in one shot, a malformed line anywhere is reported before the first
value out of range. A file no larger than one chunk is parsed exactly as in one shot.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Sequence

import numpy as np

from rec.errors import RecError, UsageError

CHUNK_BYTES = 1 << 22  # 4 MiB of text (~150k ratings lines): temporaries ~6x that
_INT32 = np.iinfo(np.int32)
_INT64 = np.iinfo(np.int64)  # np.fromstring saturates at its bounds


@dataclass(frozen=True)
class Range:
    """Values of column `col` must lie in [lo, hi]; `what` and `expected` word the error."""

    col: int
    lo: float
    hi: float
    what: str
    expected: str


def bad_line(path: Path, lineno: int, line: str, expected: str) -> RecError:
    return RecError(f"{path}:{lineno}: malformed line {line[:120]!r} (expected {expected})")


def missing(path: Path) -> UsageError:
    return UsageError(f"missing {path}: the dataset folder is incomplete; run `rec download` again")


def _separator_starts(buf: np.ndarray, sep: bytes) -> np.ndarray:
    """Positions where `sep` starts in the byte array `buf`."""
    at = buf == sep[0]
    for offset, byte in enumerate(sep[1:], start=1):
        at[:-offset] &= buf[offset:] == byte
        at[len(at) - offset:] = False
    return np.flatnonzero(at)


def _separators_per_line_ok(body: bytes, sep: bytes, n_lines: int, per_line: int) -> bool:
    """Every line has exactly `per_line` separators (a total count alone would let a short
    line and a long line cancel out and shift the table)."""
    buf = np.frombuffer(body, dtype=np.uint8)
    line_of_sep = np.searchsorted(np.flatnonzero(buf == 10), _separator_starts(buf, sep))
    return bool((np.bincount(line_of_sep, minlength=n_lines)[:n_lines] == per_line).all()
                and line_of_sep.max(initial=0) < max(n_lines, 1))


def _decimals_as_integers(chunk: bytes, sep: bytes, n_lines: int, ncols: int,
                          col: int) -> np.ndarray | None:
    """Parse a chunk whose only non-integer column is `col` (e.g. ratings "4.5") 5x faster
    than numpy's float parser: drop the decimal points, parse integers, divide each value
    that had one by 10**digits (exact: the same double as parsing "4.5"). None when the chunk
    is not like that (a point elsewhere, two on a line, anything unparsable): the caller
    then takes numpy's float parser. Call only once the separators per line are right."""
    buf = np.frombuffer(chunk, dtype=np.uint8)
    points = np.flatnonzero(buf == 46)  # b"."
    if points.size:
        line = np.searchsorted(np.flatnonzero(buf == 10), points)
        seps = _separator_starts(buf, sep)
        after = np.searchsorted(seps, points)  # separators before each point
        if (col >= ncols - 1 or (np.diff(line) == 0).any()
                or (after - line * (ncols - 1) != col).any()):
            return None
        digits = seps[after] - points - 1  # between the point and the separator after it
        if digits.max() > 15:
            return None
        chunk = chunk.replace(b".", b"")
    try:
        ints = np.fromstring(chunk.replace(sep, b" "), dtype=np.int64, sep=" ")
    except ValueError:
        return None
    if ints.size and (ints.max() == _INT64.max or ints.min() == _INT64.min):
        return None  # saturated: too large for int64
    if ints.size != n_lines * ncols:
        return None
    table = ints.reshape(n_lines, ncols).astype(np.float64)
    del ints
    if points.size:
        table[line, col] /= 10.0 ** digits
    return table


def _skip_line(f: BinaryIO) -> None:
    """Move past the first line (a header), however long, without holding it whole."""
    line = f.readline(1 << 20)
    while line and not line.endswith(b"\n"):
        line = f.readline(1 << 20)


def count_lines(f: BinaryIO, chunk_bytes: int = CHUNK_BYTES) -> int:
    """Lines from the current position to the end: newlines, plus an unterminated last line."""
    n, last = 0, b""
    for block in iter(lambda: f.read(chunk_bytes), b""):
        n += block.count(b"\n")
        last = block[-1:]
    return n + (1 if last not in (b"", b"\n") else 0)


def line_chunks(f: BinaryIO, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The rest of `f` in pieces of about chunk_bytes, each ending just after a newline (the
    last piece may lack one): a block, completed to the end of its last line."""
    for block in iter(lambda: f.read(chunk_bytes), b""):
        if not block.endswith(b"\n"):
            block += f.readline()
        yield block


def parse_chunk(path: Path, chunk: bytes, sep: bytes, ncols: int, expected: str,
                first_line: int, dtype=np.int64, decimal_col: int | None = None) -> np.ndarray:
    """One chunk of whole lines -> an (n_lines, ncols) array, or the RecError naming the
    first malformed line (`first_line` is the number of the chunk's first line).
    `decimal_col`: with dtype float64, the one column that may hold decimals (see
    _decimals_as_integers); the other columns are then parsed as integers."""
    n_lines = chunk.count(b"\n") + (0 if chunk.endswith(b"\n") or not chunk else 1)
    if not _separators_per_line_ok(chunk, sep, n_lines, ncols - 1):
        flat = None
    elif decimal_col is not None and dtype is np.float64 and (
            table := _decimals_as_integers(chunk, sep, n_lines, ncols, decimal_col)) is not None:
        return table
    else:
        try:
            flat = np.fromstring(chunk.replace(sep, b" "), dtype=dtype, sep=" ") if chunk \
                else np.zeros(0, dtype=dtype)
        except ValueError:  # numpy 2.4 raises on unparsable text (older ones warned)
            flat = None
    if flat is not None and dtype is np.int64 and flat.size and (
            flat.max() == _INT64.max or flat.min() == _INT64.min):
        flat = None  # numpy saturates what int64 cannot hold: name the line instead
    if flat is not None and flat.size == n_lines * ncols:
        return flat.reshape(n_lines, ncols)
    # Slow path: find and name the first line that is not `ncols` numbers.
    text = chunk.decode("latin-1")
    for i, line in enumerate(text.splitlines(), start=first_line):
        parts = line.split(sep.decode())
        try:
            if len(parts) != ncols:
                raise ValueError
            values = [dtype(p) if dtype is not np.int64 else int(p) for p in parts]
            if dtype is np.int64 and not all(_INT64.min < v < _INT64.max for v in values):
                raise ValueError
        except ValueError:
            raise bad_line(path, i, line, expected) from None
    lines = text.splitlines()
    raise bad_line(path, first_line + max(len(lines) - 1, 0), lines[-1] if lines else "",
                   expected)


def _check_range(path: Path, chunk: bytes, table: np.ndarray, rng: Range,
                 first_line: int) -> RecError | None:
    bad = np.flatnonzero((table[:, rng.col] < rng.lo) | (table[:, rng.col] > rng.hi))
    if bad.size:
        i = int(bad[0])
        line = chunk.decode("latin-1").splitlines()[i]
        return RecError(f"{path}:{first_line + i}: {rng.what} {table[i, rng.col]:g} out of range "
                       f"[{rng.lo:g}, {rng.hi:g}] in line {line[:120]!r} "
                       f"(expected {rng.expected})")
    return None


def _store(column: np.ndarray, start: int, values: np.ndarray) -> np.ndarray:
    """column[start:start+len(values)] = values; an int32 column that cannot hold them
    becomes int64 (ids beyond 2**31 are allowed, just not expected)."""
    if column.dtype == np.int32 and values.size and (
            values.min() < _INT32.min or values.max() > _INT32.max):
        column = column.astype(np.int64)
    column[start:start + len(values)] = values
    return column


def read_columns(path: Path, sep: bytes, columns: Sequence, expected: str, *,
                 header: bool = False, dtype=np.int64, ranges: Sequence[Range] = (),
                 decimal_col: int | None = None,
                 chunk_bytes: int | None = None) -> list[np.ndarray]:
    """Parse a file of len(columns) numeric fields per line into one array per column, of
    the dtypes in `columns` (each line parsed as `dtype`, then cast: int64 parsing rejects
    "4.5", float64 parsing accepts it). `header`: skip the first line (line numbers still
    count it). Raises UsageError if the file is missing, RecError naming `path:line`."""
    chunk_bytes = chunk_bytes or CHUNK_BYTES
    ncols = len(columns)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise missing(path) from None
    with f:
        if header:
            _skip_line(f)
        start = f.tell()
        n = count_lines(f, chunk_bytes)
        f.seek(start)
        out = [np.empty(n, dtype=d) for d in columns]
        row, lineno = 0, 2 if header else 1
        out_of_range = None  # the first one; a malformed line anywhere is reported first
        for chunk in line_chunks(f, chunk_bytes):
            table = parse_chunk(path, chunk, sep, ncols, expected, lineno, dtype, decimal_col)
            k = len(table)
            for rng in ranges:
                out_of_range = out_of_range or _check_range(path, chunk, table, rng, lineno)
            if row + k > n:
                raise RecError(f"{path} changed while it was being read")
            for j in range(ncols):
                out[j] = _store(out[j], row, table[:, j])
            del table
            row, lineno = row + k, lineno + k
    if row != n:
        raise RecError(f"{path} changed while it was being read")
    if out_of_range is not None:
        raise out_of_range
    return out


def read_ratings(path: Path, sep: bytes, expected: str, rating_range: Range, *,
                 header: bool = False, dtype=np.int64,
                 chunk_bytes: int | None = None) -> tuple[np.ndarray, ...]:
    """user, movie, rating, timestamp lines -> (int32 users, int32 movies, float32 ratings,
    int64 times); ids that do not fit int32 come back as int64."""
    users, movies, values, times = read_columns(
        path, sep, (np.int32, np.int32, np.float32, np.int64), expected, header=header,
        dtype=dtype, ranges=(rating_range,), decimal_col=rating_range.col,
        chunk_bytes=chunk_bytes)
    return users, movies, values, times


def distinct_ids(values: np.ndarray) -> np.ndarray:
    """np.unique(values) as int64, without sorting a copy when the ids are small integers."""
    if not len(values):
        return np.zeros(0, dtype=np.int64)
    lo, hi = int(values.min()), int(values.max())
    if lo >= 0 and hi <= max(1 << 22, len(values)):  # a flag per possible id: small
        present = np.zeros(hi + 1, dtype=bool)
        present[values] = True
        return np.flatnonzero(present).astype(np.int64)
    return np.unique(values).astype(np.int64)
