"""Criteo display-advertising format: a streaming reader and the usual transforms.

The raw format, one sample per line, tab separated:

    label  I1 .. I13  C1 .. C26
    label  0 or 1 (a file without labels, like Kaggle's test.txt, has 39 columns)
    I1-13  integer counts (may be negative, e.g. -1 or -2), empty = missing
    C1-26  hashed categorical values in hexadecimal (e.g. 68fd1e64), empty = missing

Lines may be short: real files cut trailing empty fields off, so a line with fewer columns
means the missing ones are empty. Blank lines are skipped. Anything else (a label that is not
0 or 1, a non-integer count, a non-hex category, too many columns) stops the reader with one
line naming the line number and the field (`CriteoFormatError`, exit 2).

Reading is chunked (`read_chunks`): a chunk of lines is split in Python, then every column is
converted and checked with vectorised numpy, so the file never has to fit in memory and there
is no per-value Python work. Categories are kept as their 64-bit values (`int(hex, 16)`).

Transforms (`CriteoTransform`), chosen by flag in `rec ctr-train`:
    dense     sign(x) * log(1 + |x|) ("log of counts"); missing -> 0
    hash      category -> splitmix64(value, field) mod hash_size: one shared id space of a
              fixed size, no pass over the data needed; empty values hash per field too
    vocab     category -> its own id when seen at least `min_count` times in the training
              lines, else the field's "rare" id; empty -> the field's "missing" id

A synthetic generator for this format lives in rec/datasets/criteo_synthetic.py. Numpy only:
no paddle here.
"""

from __future__ import annotations

import gzip
import io
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterator

import numpy as np

from rec.errors import UsageError
from rec.typed import check_readable

N_DENSE, N_CAT = 13, 26
N_COLUMNS = 1 + N_DENSE + N_CAT
DENSE_NAMES = [f"I{i + 1}" for i in range(N_DENSE)]
CAT_NAMES = [f"C{i + 1}" for i in range(N_CAT)]
CHUNK_BYTES = 8 << 20  # about 35,000 lines of real Criteo data
CHUNK_LINES = 100_000  # lines per chunk written by the generator
MISSING_VALUE = np.uint64(0xFFFF_FFFF_FFFF_FFFF)  # stands for an empty category when hashing

_HEX = np.full(129, 255, dtype=np.uint8)  # code point -> hex digit; 254 = padding, 255 = bad
for _i, _c in enumerate("0123456789abcdef"):
    _HEX[ord(_c)] = _i
    _HEX[ord(_c.upper())] = _i
_HEX[0] = 254


class CriteoFormatError(UsageError):
    """A malformed line: the message names it as SOURCE:N ("stdin:3", "day_0.gz:12", as
    rec names lines everywhere) and the field; `line` is N."""

    def __init__(self, source: str, line: int, problem: str):
        super().__init__(f"{source}:{line}: {problem}")
        self.line = line


# --- reading --------------------------------------------------------------------------------


@dataclass
class Chunk:
    """Parsed lines, in file order."""

    line_numbers: np.ndarray  # int64 (n,) 1-based line numbers in the file
    labels: np.ndarray | None  # float32 (n,) 0/1, None for a file without labels
    dense: np.ndarray  # float64 (n, 13) the integers, nan where missing
    cats: np.ndarray  # uint64 (n, 26) the hex values
    cat_missing: np.ndarray  # bool (n, 26) empty categories

    def __len__(self) -> int:
        return len(self.line_numbers)

    def take(self, index: np.ndarray) -> "Chunk":
        return Chunk(self.line_numbers[index],
                     None if self.labels is None else self.labels[index],
                     self.dense[index], self.cats[index], self.cat_missing[index])


def _field_text(buf: np.ndarray, start: int, length: int) -> str:
    return bytes(buf[start: start + length]).decode("latin-1")


def parse_bytes(data: bytes, first_line: int = 1, has_label: bool = True,
                source: str = "input") -> Chunk:
    """Parse whole lines (`data` holds complete lines; line `first_line` starts it).

    Vectorised: the tab and newline positions give every field's start and length in one
    (lines, columns) table, then labels, integers and hex values are decoded column-wise
    from the bytes. CriteoFormatError names the first bad line and field."""
    width = N_COLUMNS if has_label else N_COLUMNS - 1
    if data and not data.endswith(b"\n"):
        data += b"\n"
    buf = np.frombuffer(data, dtype=np.uint8)
    seps = np.flatnonzero((buf == 9) | (buf == 10))
    is_nl = buf[seps] == 10
    field_start = np.r_[0, seps[:-1] + 1] if len(seps) else np.zeros(0, np.int64)
    field_end = seps.copy()
    line_of = np.r_[0, np.cumsum(is_nl)[:-1]] if len(seps) else np.zeros(0, np.int64)
    n_lines = int(is_nl.sum())
    first_field = np.r_[0, np.flatnonzero(is_nl)[:-1] + 1] if n_lines else np.zeros(0, np.int64)
    col = np.arange(len(seps)) - first_field[line_of]
    # a \r before the newline (Windows line ends) is not part of the last field
    cr = is_nl & (field_end > field_start) & (buf[np.maximum(field_end - 1, 0)] == 13)
    field_end[cr] -= 1
    n_fields = np.bincount(line_of, minlength=n_lines)
    lengths = field_end - field_start
    if (n_fields > width).any():
        i = int(np.flatnonzero(n_fields > width)[0])
        raise CriteoFormatError(source, first_line + i, f"{n_fields[i]} tab-separated "
                                f"fields, expected at most {width}"
                                + ("" if has_label else " (a file without labels)"))
    starts = np.zeros((n_lines, width), dtype=np.int64)
    lens = np.zeros((n_lines, width), dtype=np.int64)
    starts[line_of, col] = field_start
    lens[line_of, col] = lengths
    blank = (n_fields == 1) & (lens[:, 0] == 0)
    numbers = first_line + np.arange(n_lines, dtype=np.int64)
    if blank.any():
        keep = ~blank
        starts, lens, numbers = starts[keep], lens[keep], numbers[keep]
    n = len(numbers)
    if n == 0:
        return Chunk(numbers, np.zeros(0, np.float32) if has_label else None,
                     np.zeros((0, N_DENSE)), np.zeros((0, N_CAT), np.uint64),
                     np.zeros((0, N_CAT), bool))

    def bad(message: str, mask: np.ndarray, names: list[str], offset: int):
        i, j = _first_bad(mask)
        text = _field_text(buf, int(starts[i, offset + j]), int(lens[i, offset + j]))
        name = names[j]
        raise CriteoFormatError(source, numbers[i], f"{name} {message} ({text!r})")

    off = 1 if has_label else 0
    labels = None
    if has_label:
        first = buf[np.minimum(starts[:, 0], len(buf) - 1)] if n else np.zeros(0, np.uint8)
        ok = (lens[:, 0] == 1) & ((first == 48) | (first == 49))
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            text = _field_text(buf, int(starts[i, 0]), int(lens[i, 0]))
            got = f"got {text!r}" if text else "it is empty"
            raise CriteoFormatError(source, numbers[i], f"the label must be 0 or 1 ({got})")
        labels = (first == 49).astype(np.float32)

    # integers: optional leading '-', then up to 18 digits; decoded position by position
    last = len(buf) - 1
    d_starts, d_lens = starts[:, off: off + N_DENSE], lens[:, off: off + N_DENSE]
    if (d_lens > 19).any():
        bad("is out of range", d_lens > 19, DENSE_NAMES, off)
    negative = (buf[np.minimum(d_starts, last)] == 45) & (d_lens > 0)
    wrong = negative & (d_lens == 1)
    values = np.zeros(d_lens.shape, dtype=np.int64)
    for k in range(int(d_lens.max(initial=0))):
        real = (k < d_lens) & ~(negative & (k == 0))
        digit = buf[np.minimum(d_starts + k, last)].astype(np.int64) - 48
        wrong |= real & ((digit < 0) | (digit > 9))
        values = np.where(real, values * 10 + digit, values)
    if wrong.any():
        bad("is not an integer", wrong, DENSE_NAMES, off)
    dense = np.where(negative, -values, values).astype(np.float64)
    dense[d_lens == 0] = np.nan

    # categories: hex digits, decoded into a uint64 by Horner's rule (wraps past 16 digits)
    c_starts, c_lens = starts[:, off + N_DENSE:], lens[:, off + N_DENSE:]
    cats = np.zeros(c_lens.shape, dtype=np.uint64)
    wrong = np.zeros(c_lens.shape, dtype=bool)
    sixteen = np.uint64(16)
    with np.errstate(over="ignore"):
        for k in range(int(c_lens.max(initial=0))):
            real = k < c_lens
            digit = _HEX[np.minimum(buf[np.minimum(c_starts + k, last)], 128)]
            wrong |= real & (digit > 15)
            cats = np.where(real, cats * sixteen + digit.astype(np.uint64), cats)
    if wrong.any():
        bad("is not hexadecimal", wrong, CAT_NAMES, off + N_DENSE)
    return Chunk(numbers, labels, dense, cats, c_lens == 0)


def parse_lines(lines: list[str], first_line: int = 1, has_label: bool = True,
                source: str = "input") -> Chunk:
    """parse_bytes for text lines (each may or may not end with a newline)."""
    data = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    return parse_bytes(data.encode("latin-1"), first_line, has_label, source)


def _first_bad(mask: np.ndarray) -> tuple[int, int]:
    flat = int(np.flatnonzero(mask.reshape(-1))[0])
    return flat // mask.shape[1], flat % mask.shape[1]


def open_binary(path: str | Path) -> IO[bytes]:
    """A Criteo file (plain or .gz) as bytes; '-' is stdin."""
    if str(path) == "-":
        from rec.typed import open_stdin

        stdin = open_stdin()
        return stdin.buffer if hasattr(stdin, "buffer") else io.BytesIO(
            stdin.read().encode("latin-1"))
    p = Path(path)
    check_readable(str(p))
    if p.suffix == ".gz":
        return gzip.open(p, "rb")
    return open(p, "rb")


def parse_skipping(data: bytes, first_line: int, has_label: bool, source: str,
                   on_bad: Callable[[str], None]) -> Chunk:
    """parse_bytes, each malformed line skipped and its message given to `on_bad`, in line
    order: the line is blanked, so the others keep their numbers, and the rest parsed again."""
    bad = []
    while True:
        try:
            chunk = parse_bytes(data, first_line, has_label, source)
            break
        except CriteoFormatError as e:
            bad.append((e.line, str(e)))
            lines = data.split(b"\n")
            lines[bad[-1][0] - first_line] = b""
            data = b"\n".join(lines)
    for _, message in sorted(bad):
        on_bad(message)
    return chunk


def read_chunks(path: str | Path, chunk_bytes: int = CHUNK_BYTES,
                has_label: bool = True,
                on_bad: Callable[[str], None] | None = None) -> Iterator[Chunk]:
    """Parse a Criteo file about `chunk_bytes` of whole lines at a time, in file order
    (memory: one chunk). With `on_bad`, a malformed line is given to it and skipped
    (`parse_skipping`) instead of stopping the read."""
    def parse(data: bytes, first: int) -> Chunk:
        if on_bad is None:
            return parse_bytes(data, first, has_label, source)
        return parse_skipping(data, first, has_label, source, on_bad)

    source = "stdin" if str(path) == "-" else str(path)
    f = open_binary(path)
    try:
        first, rest = 1, b""
        while True:
            try:
                block = f.read(chunk_bytes)
            except (OSError, EOFError) as e:
                raise UsageError(f"cannot read {source}: {e}")
            if not block:
                break
            block = rest + block
            cut = block.rfind(b"\n") + 1
            if cut == 0:
                rest = block
                continue
            data, rest = block[:cut], block[cut:]
            chunk = parse(data, first)
            first += data.count(b"\n")
            if len(chunk):
                yield chunk
        if rest:
            chunk = parse(rest, first)
            if len(chunk):
                yield chunk
    finally:
        if f is not getattr(sys.stdin, "buffer", None):
            f.close()


# --- transforms -----------------------------------------------------------------------------


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a fast, well-mixed 64-bit hash of uint64 values."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def validation_mask(line_numbers: np.ndarray, ratio: float, seed: int) -> np.ndarray:
    """A seeded pseudo-random `ratio` of lines, decided by line number alone (so every pass,
    chunk size or resumed run agrees)."""
    if ratio <= 0:
        return np.zeros(len(line_numbers), dtype=bool)
    salt = mix64(np.uint64(seed % 2**63) + np.uint64(0x9E3779B97F4A7C15))
    u = (mix64(line_numbers.astype(np.uint64) ^ salt) >> np.uint64(11)).astype(np.float64) / 2.0**53
    return u < ratio


def log_dense(dense: np.ndarray) -> np.ndarray:
    """sign(x) * log(1 + |x|), missing -> 0, as float32."""
    out = np.sign(dense) * np.log1p(np.abs(dense))
    return np.nan_to_num(out, nan=0.0).astype(np.float32)


def hash_ids(cats: np.ndarray, missing: np.ndarray, size: int) -> np.ndarray:
    """Category values -> ids in [0, size): per-field salted splitmix64."""
    salt = mix64(np.arange(1, N_CAT + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15))
    key = np.where(missing, MISSING_VALUE, cats)
    return (mix64(key ^ salt[None, :]) % np.uint64(size)).astype(np.int64)


class VocabCounter:
    """Counts category values per field, chunk by chunk (merged as sorted unique arrays)."""

    def __init__(self):
        self.values = [np.zeros(0, np.uint64) for _ in range(N_CAT)]
        self.counts = [np.zeros(0, np.int64) for _ in range(N_CAT)]

    def add(self, cats: np.ndarray, missing: np.ndarray) -> None:
        for j in range(N_CAT):
            v = cats[~missing[:, j], j]
            if not len(v):
                continue
            u, c = np.unique(v, return_counts=True)
            allv = np.concatenate([self.values[j], u])
            allc = np.concatenate([self.counts[j], c])
            merged, inverse = np.unique(allv, return_inverse=True)
            self.values[j] = merged
            self.counts[j] = np.bincount(inverse, weights=allc, minlength=len(merged)).astype(np.int64)

    def vocabulary(self, min_count: int) -> "CategoryVocab":
        return CategoryVocab([v[c >= min_count] for v, c in zip(self.values, self.counts)])


@dataclass
class CategoryVocab:
    """Per field, the sorted values that get their own id. Field j's ids start at offsets[j]:
    offsets[j] = missing, offsets[j] + 1 = rare (or unseen), offsets[j] + 2 + i = kept[j][i]."""

    kept: list[np.ndarray]
    offsets: np.ndarray = field(init=False)

    def __post_init__(self):
        sizes = np.array([2 + len(k) for k in self.kept], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.size = int(sizes.sum())

    def ids(self, cats: np.ndarray, missing: np.ndarray) -> np.ndarray:
        out = np.empty(cats.shape, dtype=np.int64)
        for j, kept in enumerate(self.kept):
            v = cats[:, j]
            pos = np.searchsorted(kept, v)
            found = pos < len(kept)
            found[found] = kept[pos[found]] == v[found]
            out[:, j] = self.offsets[j] + np.where(missing[:, j], 0, np.where(found, 2 + pos, 1))
        return out

    def save(self, path: Path) -> None:
        from rec.storage.atomic import atomic_path

        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **{f"C{j + 1}": k for j, k in enumerate(self.kept)})

    @classmethod
    def load(cls, path: Path) -> "CategoryVocab":
        with np.load(path, allow_pickle=False) as z:
            return cls([z[f"C{j + 1}"].astype(np.uint64) for j in range(N_CAT)])


@dataclass
class CriteoTransform:
    """How raw lines become model inputs: `mode` hash (with `hash_size`) or vocab."""

    mode: str = "hash"
    hash_size: int = 2 ** 18
    min_count: int = 10
    vocab: CategoryVocab | None = None

    @property
    def n_ids(self) -> int:
        return self.hash_size if self.mode == "hash" else self.vocab.size

    def ids(self, chunk: Chunk) -> np.ndarray:
        if self.mode == "hash":
            return hash_ids(chunk.cats, chunk.cat_missing, self.hash_size)
        return self.vocab.ids(chunk.cats, chunk.cat_missing)

    def dense(self, chunk: Chunk) -> np.ndarray:
        return log_dense(chunk.dense)

    def to_json(self) -> dict:
        return {"mode": self.mode, "hash_size": self.hash_size, "min_count": self.min_count,
                "dense": "log"}
