"""The datasets `rec download` knows: where each comes from, how to check it, what it holds.

A spec is plain data (`DatasetSpec`, `FileSpec`) kept in the `SPECS` dict, so a test can swap
in a tiny archive by replacing one entry (`monkeypatch.setitem(SPECS, "ml-1m", ...)`), and a
later stage can ask for file names instead of spelling them itself:

    spec = registry.get("ml-1m")            # UsageError listing the choices if unknown
    spec.file("ratings").name               # "ratings.dat"
    registry.dataset_files(paths, "ml-1m")  # {"users": data/ml-1m/users.dat, ...}
    registry.read_marker(paths.raw("ml-1m"))  # the .rec-verified.json record, or None

Structure checks match every line of every listed file against a regular expression. With a
possessive repeat over a block of lines that costs ~0.1 s for ml-1m's million ratings, so there
is no reason to check only a sample. Files are read in line-aligned blocks (BLOCK bytes), so
checking MovieLens 32M's 877 MB ratings.csv needs no more memory than checking ml-1m's.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from rec.errors import RecError, UsageError
from rec.paths import Paths

BASE_URL = "https://files.grouplens.org/datasets/movielens"
MARKER = ".rec-verified.json"  # written into a dataset folder once it has been verified
DEFAULT = "ml-1m"


@dataclass(frozen=True)
class FileSpec:
    name: str  # path inside the dataset folder
    role: str  # "users", "movies", "ratings" or "other": what a later stage reads it as
    line: bytes  # regular expression one data line must match (without its newline)
    rows: int | None = None  # data rows expected (header excluded); None: not known
    header: bytes | None = None  # exact first line, for CSV files
    encoding: str = "latin-1"  # MovieLens .dat/.item files are latin-1, not UTF-8
    sep: str = "::"
    max_line: int = 256  # bytes a line can hold (the published files stay well below)

    def max_bytes(self) -> int:
        """The most bytes the file can hold: its rows at max_line bytes each (and CRLF), its
        header; MAX_UNKNOWN_BYTES when the rows are not pinned. An archive member above it
        is refused before it is extracted (rec.datasets.archive)."""
        if self.rows is None:
            return MAX_UNKNOWN_BYTES
        return (self.rows + 1) * (self.max_line + 2) + len(self.header or b"")


MAX_UNKNOWN_BYTES = 4 << 30
# max_line of the files (the longest line of the published ml-1m, ml-100k and
# ml-latest-small files is 32 bytes in a ratings file, 32 in a users file, 265 in u.item)
RATING_LINE, USER_LINE, MOVIE_LINE = 64, 128, 1024


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    format: str  # "ml-1m", "ml-10m", "ml-100k" or "ml-latest": which parser reads the folder
    files: tuple[FileSpec, ...]
    url: str | None = None  # official archive; None for generated data
    md5: str | None = None  # publisher's MD5, pinned
    md5_url: str | None = None  # where the publisher's MD5 is, when none is pinned
    generated: bool = False  # made locally (synthetic), never downloaded

    def file(self, role: str) -> FileSpec:
        for f in self.files:
            if f.role == role:
                return f
        raise KeyError(f"{self.name} has no {role} file")

    def member_caps(self) -> dict[str, int]:
        """{file name: the most bytes it can hold}: what to take from an archive."""
        return {f.name: f.max_bytes() for f in self.files}

    def with_rows(self, rows: dict[str, int | None]) -> "DatasetSpec":
        """The same spec expecting other row counts ({file name: rows}); for tiny test data."""
        files = tuple(dataclasses.replace(f, rows=rows.get(f.name, f.rows)) for f in self.files)
        return dataclasses.replace(self, files=files)


# Line patterns. Ids are integers, ratings are 1-5 (half stars in ml-latest), timestamps are
# integers. `[^...\n]` keeps every pattern inside one line.
ML1M_FILES = (
    FileSpec("users.dat", "users", rb"\d+::[MF]::\d+::\d+::[^:\n]*", 6040, max_line=USER_LINE),
    FileSpec("movies.dat", "movies", rb"\d+::[^\n]+::[^:\n]*", 3883, max_line=MOVIE_LINE),
    FileSpec("ratings.dat", "ratings", rb"\d+::\d+::[1-5]::\d+", 1000209, max_line=RATING_LINE),
)
_PIPE = rb"[^|\n]*"
ML100K_FILES = (
    FileSpec("u.user", "users", rb"\d+\|\d+\|[MF]\|[^|\n]+\|[^|\n]*", 943, sep="|",
             max_line=USER_LINE),
    # id|title|release date|video release date|IMDb URL|19 genre flags
    FileSpec("u.item", "movies", rb"\d+(?:\|" + _PIPE + rb"){4}(?:\|[01]){19}", 1682, sep="|",
             max_line=MOVIE_LINE),
    FileSpec("u.data", "ratings", rb"\d+\t\d+\t[1-5]\t\d+", 100000, sep="\t",
             max_line=RATING_LINE),
    FileSpec("u.genre", "other", rb"[^|\n]+\|\d+", 19, sep="|"),
    FileSpec("u.occupation", "other", rb"[^|\n]+", 21, sep="|"),
)
MLLATEST_FILES = (
    # Titles with commas are quoted, with "" for a quote inside.
    FileSpec("movies.csv", "movies", rb'\d+,(?:"(?:[^"\n]|"")*"|[^",\n]*),[^,\n]*', 9742,
             header=b"movieId,title,genres", encoding="utf-8", sep=",", max_line=MOVIE_LINE),
    FileSpec("ratings.csv", "ratings", rb"\d+,\d+,[0-5](?:\.[05])?,\d+", 100836,
             header=b"userId,movieId,rating,timestamp", encoding="utf-8", sep=",",
             max_line=RATING_LINE),
)
# MovieLens 10M (the archive's folder is ml-10M100K/): no users.dat, half-star ratings
# ("4.5", "5"); tags.dat is not read, so not checked either.
ML10M_FILES = (
    FileSpec("movies.dat", "movies", rb"\d+::[^\n]+::[^:\n]*", 10681, encoding="utf-8",
             max_line=MOVIE_LINE),
    FileSpec("ratings.dat", "ratings", rb"\d+::\d+::[0-5](?:\.[05])?::\d+", 10000054,
             max_line=RATING_LINE),
)


def _latest_rows(movies: int, ratings: int) -> tuple[FileSpec, ...]:
    """ml-latest's two files with other row counts (the 20M/25M/32M archives also hold
    links.csv, tags.csv and genome files, which are not read and not checked)."""
    return tuple(dataclasses.replace(f, rows=movies if f.role == "movies" else ratings)
                 for f in MLLATEST_FILES)


def _official(name: str, fmt: str, files: tuple[FileSpec, ...], md5: str | None) -> DatasetSpec:
    url = f"{BASE_URL}/{name}.zip"
    return DatasetSpec(name, fmt, files, url=url, md5=md5, md5_url=None if md5 else url + ".md5")


SPECS: dict[str, DatasetSpec] = {
    "ml-1m": _official("ml-1m", "ml-1m", ML1M_FILES, "c4d9eecfca2ab87c1945afe126590906"),
    "ml-100k": _official("ml-100k", "ml-100k", ML100K_FILES, "0e33842e24a9c977be4e0107933c0723"),
    # ml-latest-small is republished from time to time: read the MD5 published beside it.
    "ml-latest-small": _official("ml-latest-small", "ml-latest", MLLATEST_FILES, None),
    # The larger ones. Row counts are the published ones (each archive's README):
    # 10M: 10,000,054 ratings of 10,681 movies; 20M: 20,000,263 of 27,278; 25M: 25,000,095
    # of 62,423; 32M: 32,000,204 of 87,585. No demographics in any of them.
    "ml-10m": _official("ml-10m", "ml-10m", ML10M_FILES, "ce571fd55effeba0271552578f2648bd"),
    "ml-20m": _official("ml-20m", "ml-latest", _latest_rows(27278, 20000263),
                        "cd245b17a1ae2cc31bb14903e1204af3"),
    "ml-25m": _official("ml-25m", "ml-latest", _latest_rows(62423, 25000095),
                        "6b51fb2759a8657d3bfcbfc42b592ada"),
    "ml-32m": _official("ml-32m", "ml-latest", _latest_rows(87585, 32000204),
                        "d472be332d4daa821edc399621853b57"),
    # Same files as ml-1m, any size (set by the generator's options).
    "synthetic": DatasetSpec("synthetic", "ml-1m",
                             tuple(dataclasses.replace(f, rows=None) for f in ML1M_FILES),
                             generated=True),
}


def names() -> list[str]:
    return list(SPECS)


def get(name: str) -> DatasetSpec:
    try:
        return SPECS[name]
    except KeyError:
        raise UsageError(f"unknown dataset {name!r}: choose one of {', '.join(SPECS)}") from None


def dataset_files(paths: Paths, name: str) -> dict[str, Path]:
    """{role: path} of the data files of a downloaded dataset (first file per role)."""
    folder = paths.raw(name)
    out: dict[str, Path] = {}
    for f in get(name).files:
        out.setdefault(f.role, folder / f.name)
    return out


def read_marker(folder: Path) -> dict | None:
    """The verification record of a dataset folder, or None if absent or unreadable."""
    try:
        obj = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


# --- structure checks ---------------------------------------------------------------------


BLOCK = 1 << 24  # bytes read at a time by the structure check


def _blocks(f, block: int) -> Iterator[tuple[bytes, bool]]:
    """(piece, last) pairs covering the rest of `f`. Every piece but the last ends with the
    newline of a non-blank line; a run of blank lines is carried into the next piece, so
    blank lines at the very end (harmless) reach the last piece, which is then stripped."""
    carry = b""
    while True:
        data = f.read(block)
        if not data:
            end = len(carry)
            while end and carry[end - 1] in b"\r\n":  # trailing blank lines are harmless
                end -= 1
            yield carry[:end], True
            return
        data = carry + data if carry else data
        end = data.rfind(b"\n") + 1
        while end and data[end - 1] in b"\r\n":  # back over the trailing newlines ...
            end -= 1
        end = data.find(b"\n", end) + 1 if end else 0  # ... keeping the last line's own
        carry = data[end:]
        if end:
            yield data[:end], False


def check_file(path: Path, spec: FileSpec, label: str | None = None,
               block: int | None = None) -> int:
    """Check every line of one file; return its number of data rows or raise RecError."""
    label = label or spec.name
    if not path.is_file():
        raise RecError(f"{label} is missing")
    # Possessive repeat: no backtracking across lines, so this is linear and fast. The match
    # stops at the first line that does not fit, which names the culprit for the message.
    whole = re.compile(rb"(?:" + spec.line + rb"(?:\r?\n|\Z))*+")
    rows = 0  # data lines checked so far
    with open(path, "rb") as f:
        first_line = 1
        if spec.header is not None:
            line = f.readline(1 << 16)
            first = (line[:-1] if line.endswith(b"\n") else line).rstrip(b"\r")
            if first.lstrip(b"\xef\xbb\xbf") != spec.header:  # tolerate a UTF-8 BOM
                raise RecError(f"{label}: first line is {first[:80]!r}, expected the header "
                               f"{spec.header.decode()!r}")
            first_line = 2
        for data, last in _blocks(f, block or BLOCK):
            m = whole.match(data)
            if m.end() != len(data):
                bad_start = m.end()
                bad_end = data.find(b"\n", bad_start)
                bad = data[bad_start: bad_end if bad_end >= 0 else len(data)].rstrip(b"\r")
                line_no = first_line + rows + data.count(b"\n", 0, bad_start)
                raise RecError(f"{label} line {line_no} cannot be parsed: "
                               f"{bad[:80].decode(spec.encoding, 'replace')!r}")
            rows += data.count(b"\n") + (1 if last and data else 0)
    if spec.rows is not None and rows != spec.rows:
        raise RecError(f"{label} has {rows} rows, expected {spec.rows}")
    return rows


def check_structure(spec: DatasetSpec, folder: Path) -> dict[str, int]:
    """Check every file of a dataset folder; return {file name: rows} or raise RecError."""
    return {f.name: check_file(Path(folder) / f.name, f, f"{spec.name}/{f.name}")
            for f in spec.files}
