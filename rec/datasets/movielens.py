"""Parsers for the MovieLens file formats, into one raw in-memory form.

Three layouts are recognised by the files present in a folder:
  ml-1m style  users.dat, movies.dat, ratings.dat ('::' separated; movies.dat is latin-1)
               (also what `rec download --dataset synthetic` writes)
  ml-100k      u.user, u.item, u.data ('|' and tab separated)
  ml-latest    movies.csv, ratings.csv (quoted CSV with a header; no demographics)

Ratings files are large, so they go through numpy's text parser in one call (fast path);
only when that fails do we walk the lines to name the first malformed one (slow path).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rec.datasets.contract import AGES, GENRES, ML1M_AGES, OCCUPATIONS
from rec.errors import RecError, UsageError

YEAR_RE = re.compile(r"\((\d{4})\)\s*$")
ML100K_GENRES = ["unknown"] + GENRES


@dataclass
class RawMovieLens:
    """A parsed dataset, still keyed by raw ids. Categorical codes index the label lists."""

    user_ids: np.ndarray  # int64 (U,)
    gender: np.ndarray  # int64 (U,) index into GENDERS (0 unknown)
    age: np.ndarray  # int64 (U,) index into ages
    occupation: np.ndarray  # int64 (U,) index into occupations
    movie_ids: np.ndarray  # int64 (M,)
    titles: list[str]
    movie_genres: list[list[str]]
    rating_users: np.ndarray  # raw user ids, int64 (N,)
    rating_movies: np.ndarray  # raw movie ids, int64 (N,)
    rating_values: np.ndarray  # float32 (N,)
    rating_times: np.ndarray  # int64 (N,)
    ages: list[str] = field(default_factory=lambda: list(AGES))
    occupations: list[str] = field(default_factory=lambda: list(OCCUPATIONS))
    has_demographics: bool = True


def detect_layout(folder: Path) -> str:
    if (folder / "ratings.dat").exists() and (folder / "users.dat").exists():
        return "ml-1m"
    if (folder / "u.data").exists():
        return "ml-100k"
    if (folder / "ratings.csv").exists():
        return "ml-latest"
    raise UsageError(f"{folder} holds no MovieLens files (ratings.dat, u.data or ratings.csv)")


def parse_folder(folder: Path) -> RawMovieLens:
    layout = detect_layout(folder)
    return {"ml-1m": parse_ml1m, "ml-100k": parse_ml100k, "ml-latest": parse_latest}[layout](folder)


# --- helpers ------------------------------------------------------------------------------


def _read_lines(path: Path, encoding: str) -> list[str]:
    try:
        text = path.read_bytes().decode(encoding)
    except FileNotFoundError:
        raise UsageError(f"missing {path}: the dataset folder is incomplete; run `rec download` again")
    except UnicodeDecodeError as e:
        raise RecError(f"{path}: not valid {encoding} text ({e.reason} at byte {e.start})")
    return text.splitlines()


def _bad_line(path: Path, lineno: int, line: str, expected: str) -> RecError:
    return RecError(f"{path}:{lineno}: malformed line {line[:120]!r} (expected {expected})")


def _numeric_table(path: Path, sep: bytes, ncols: int, expected: str, header: bool = False,
                   dtype=np.int64) -> np.ndarray:
    """Parse a file of `ncols` numeric fields per line into an (N, ncols) array, fast."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"missing {path}: the dataset folder is incomplete; run `rec download` again")
    start = 0
    if header:  # skip the header line (or everything, if there is nothing but a header)
        start = raw.find(b"\n") + 1 or len(raw)
    body = raw[start:]
    n_lines = body.count(b"\n") + (0 if body.endswith(b"\n") or not body else 1)
    try:
        flat = np.fromstring(body.replace(sep, b" "), dtype=dtype, sep=" ") if body else np.zeros(0)
    except ValueError:  # numpy 2.4 raises on unparsable text (older ones warned): slow path
        flat = None
    if (flat is not None and flat.size == n_lines * ncols
            and _separators_per_line_ok(body, sep, n_lines, ncols - 1)):
        return flat.reshape(n_lines, ncols)
    # Slow path: find and name the first line that is not `ncols` numbers.
    text = body.decode("latin-1")
    for i, line in enumerate(text.splitlines(), start=2 if header else 1):
        parts = line.split(sep.decode())
        try:
            if len(parts) != ncols:
                raise ValueError
            [dtype(p) if dtype is not np.int64 else int(p) for p in parts]
        except ValueError:
            raise _bad_line(path, i, line, expected)
    raise _bad_line(path, n_lines, text.splitlines()[-1] if text else "", expected)


def _separators_per_line_ok(body: bytes, sep: bytes, n_lines: int, per_line: int) -> bool:
    """Every line has exactly `per_line` separators (a total count alone would let a short
    line and a long line cancel out and shift the table)."""
    buf = np.frombuffer(body, dtype=np.uint8)
    at = buf == sep[0]
    for offset, byte in enumerate(sep[1:], start=1):
        at[:-offset] &= buf[offset:] == byte
        at[len(at) - offset:] = False
    line_of_sep = np.searchsorted(np.flatnonzero(buf == 10), np.flatnonzero(at))
    return bool((np.bincount(line_of_sep, minlength=n_lines)[:n_lines] == per_line).all()
                and line_of_sep.max(initial=0) < max(n_lines, 1))


def _check_range(path: Path, table: np.ndarray, col: int, lo: float, hi: float, what: str,
                 expected: str, first_line: int = 1) -> None:
    bad = np.flatnonzero((table[:, col] < lo) | (table[:, col] > hi))
    if bad.size:
        i = int(bad[0])
        line = path.read_bytes().decode("latin-1").splitlines()[i + first_line - 1]
        raise RecError(f"{path}:{i + first_line}: {what} {table[i, col]:g} out of range "
                       f"[{lo:g}, {hi:g}] in line {line[:120]!r} (expected {expected})")


def _title_genres_lines(path: Path, lines: list[str], sep: str) -> tuple[list, list, list]:
    ids, titles, genres = [], [], []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.split(sep)
        if len(parts) != 3 or not parts[0].strip().isdigit():
            raise _bad_line(path, i, line, "movie_id::title::genre|genre")
        ids.append(int(parts[0]))
        titles.append(parts[1].strip())
        genres.append([g for g in parts[2].strip().split("|") if g])
    return ids, titles, genres


# --- ml-1m (and synthetic) ----------------------------------------------------------------

ML1M_RATING = "user::movie::rating::timestamp"


def parse_ml1m(folder: Path) -> RawMovieLens:
    users_path = folder / "users.dat"
    uid, gender, age, occ = [], [], [], []
    age_index = {code: i + 1 for i, code in enumerate(ML1M_AGES)}
    for i, line in enumerate(_read_lines(users_path, "latin-1"), start=1):
        if not line.strip():
            continue
        parts = line.split("::")
        try:
            if len(parts) != 5 or parts[1] not in ("M", "F"):
                raise ValueError
            u, a, o = int(parts[0]), age_index[int(parts[2])], int(parts[3])
            if not 0 <= o <= 20:
                raise ValueError
        except (ValueError, KeyError):
            raise _bad_line(users_path, i, line, "user::M|F::age code::occupation 0-20::zip")
        uid.append(u)
        gender.append(1 if parts[1] == "M" else 2)
        age.append(a)
        occ.append(o + 1)
    movies_path = folder / "movies.dat"
    mids, titles, genres = _title_genres_lines(movies_path, _read_lines(movies_path, "latin-1"), "::")
    ratings_path = folder / "ratings.dat"
    table = _numeric_table(ratings_path, b"::", 4, ML1M_RATING)
    _check_range(ratings_path, table, 2, 1, 5, "rating", ML1M_RATING)
    return RawMovieLens(
        user_ids=np.array(uid, dtype=np.int64), gender=np.array(gender, dtype=np.int64),
        age=np.array(age, dtype=np.int64), occupation=np.array(occ, dtype=np.int64),
        movie_ids=np.array(mids, dtype=np.int64), titles=titles, movie_genres=genres,
        rating_users=table[:, 0], rating_movies=table[:, 1],
        rating_values=table[:, 2].astype(np.float32), rating_times=table[:, 3])


# --- ml-100k ------------------------------------------------------------------------------


def _age_bucket(age: int) -> int:
    """Map an exact age onto the ml-1m buckets (index into AGES)."""
    edges = [18, 25, 35, 45, 50, 56]  # upper bounds (exclusive) of buckets 1..6
    for i, edge in enumerate(edges):
        if age < edge:
            return i + 1
    return len(edges) + 1


def parse_ml100k(folder: Path) -> RawMovieLens:
    users_path = folder / "u.user"
    occ_path = folder / "u.occupation"
    occupations = ["unknown"] + [line.strip() for line in _read_lines(occ_path, "latin-1")
                                 if line.strip()] if occ_path.exists() else ["unknown"]
    occ_index = {name: i for i, name in enumerate(occupations)}
    uid, gender, age, occ = [], [], [], []
    for i, line in enumerate(_read_lines(users_path, "latin-1"), start=1):
        if not line.strip():
            continue
        parts = line.split("|")
        try:
            if len(parts) != 5 or parts[2] not in ("M", "F"):
                raise ValueError
            u, a = int(parts[0]), int(parts[1])
        except ValueError:
            raise _bad_line(users_path, i, line, "user|age|M|F|occupation|zip")
        if parts[3] not in occ_index:
            occ_index[parts[3]] = len(occupations)
            occupations.append(parts[3])
        uid.append(u)
        age.append(_age_bucket(a))
        gender.append(1 if parts[2] == "M" else 2)
        occ.append(occ_index[parts[3]])
    items_path = folder / "u.item"
    mids, titles, genres = [], [], []
    for i, line in enumerate(_read_lines(items_path, "latin-1"), start=1):
        if not line.strip():
            continue
        parts = line.split("|")
        flags = parts[5:]
        if len(parts) != 24 or not parts[0].isdigit() or any(f not in ("0", "1") for f in flags):
            raise _bad_line(items_path, i, line, "movie|title|date||url|19 genre flags")
        mids.append(int(parts[0]))
        titles.append(parts[1].strip())
        genres.append([ML100K_GENRES[k] for k, f in enumerate(flags) if f == "1" and k > 0])
    ratings_path = folder / "u.data"
    table = _numeric_table(ratings_path, b"\t", 4, "user<TAB>movie<TAB>rating<TAB>timestamp")
    _check_range(ratings_path, table, 2, 1, 5, "rating", "a rating from 1 to 5")
    return RawMovieLens(
        user_ids=np.array(uid, dtype=np.int64), gender=np.array(gender, dtype=np.int64),
        age=np.array(age, dtype=np.int64), occupation=np.array(occ, dtype=np.int64),
        movie_ids=np.array(mids, dtype=np.int64), titles=titles, movie_genres=genres,
        rating_users=table[:, 0], rating_movies=table[:, 1],
        rating_values=table[:, 2].astype(np.float32), rating_times=table[:, 3],
        occupations=occupations)


# --- ml-latest(-small) --------------------------------------------------------------------


def parse_latest(folder: Path) -> RawMovieLens:
    movies_path = folder / "movies.csv"
    lines = _read_lines(movies_path, "utf-8")
    mids, titles, genres = [], [], []
    reader = csv.reader(io.StringIO("\n".join(lines[1:])))
    for i, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != 3 or not row[0].isdigit():
            raise _bad_line(movies_path, i, ",".join(row), "movieId,title,genres")
        mids.append(int(row[0]))
        titles.append(row[1].strip())
        genres.append([g for g in row[2].split("|") if g and g != "(no genres listed)"])
    ratings_path = folder / "ratings.csv"
    expected = "userId,movieId,rating,timestamp"
    table = _numeric_table(ratings_path, b",", 4, expected, header=True, dtype=np.float64)
    _check_range(ratings_path, table, 2, 0.5, 5, "rating", expected, first_line=2)
    users = np.unique(table[:, 0].astype(np.int64))
    zeros = np.zeros(len(users), dtype=np.int64)
    return RawMovieLens(
        user_ids=users, gender=zeros, age=zeros.copy(), occupation=zeros.copy(),
        movie_ids=np.array(mids, dtype=np.int64), titles=titles, movie_genres=genres,
        rating_users=table[:, 0].astype(np.int64), rating_movies=table[:, 1].astype(np.int64),
        rating_values=table[:, 2].astype(np.float32), rating_times=table[:, 3].astype(np.int64),
        ages=["unknown"], occupations=["unknown"], has_demographics=False)
