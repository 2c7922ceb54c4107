"""Parsers for the MovieLens file formats, into one raw in-memory form.

Four layouts are recognised by the files present in a folder:
  ml-1m style  users.dat, movies.dat, ratings.dat ('::' separated; movies.dat is latin-1)
               (also what `rec download --dataset synthetic` writes)
  ml-10m style movies.dat, ratings.dat without users.dat (MovieLens 10M: half-star ratings,
               no demographics; users are the ones the ratings name)
  ml-100k      u.user, u.item, u.data ('|' and tab separated)
  ml-latest    movies.csv, ratings.csv (quoted CSV with a header; no demographics):
               ml-latest-small and MovieLens 20M, 25M and 32M

Ratings files are large (MovieLens 32M: 32 million lines), so they are read by
rec.datasets.chunked: line-aligned chunks, each through numpy's text parser in one call, into
preallocated typed arrays; a chunk that fails is walked line by line to name the first
malformed line.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rec.datasets.chunked import Range, bad_line, distinct_ids, missing, read_ratings
from rec.datasets.contract import AGES, GENRES, ML1M_AGES, ML1M_CODES, OCCUPATIONS
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
    rating_users: np.ndarray  # raw user ids, int32 (int64 if an id needs it) (N,)
    rating_movies: np.ndarray  # raw movie ids, int32 (int64 if an id needs it) (N,)
    rating_values: np.ndarray  # float32 (N,)
    rating_times: np.ndarray  # int64 (N,)
    ages: list[str] = field(default_factory=lambda: list(AGES))
    occupations: list[str] = field(default_factory=lambda: list(OCCUPATIONS))
    has_demographics: bool = True
    rating_range: tuple = (1.0, 5.0)  # the format's scale (contract.Vocab.rating_range)
    codes: dict = field(default_factory=lambda: dict(ML1M_CODES))  # contract.Vocab.codes


def detect_layout(folder: Path) -> str:
    if (folder / "ratings.dat").exists():
        return "ml-1m" if (folder / "users.dat").exists() else "ml-10m"
    if (folder / "u.data").exists():
        return "ml-100k"
    if (folder / "ratings.csv").exists():
        return "ml-latest"
    raise UsageError(f"{folder} holds no MovieLens files (ratings.dat, u.data or ratings.csv)")


def parse_folder(folder: Path) -> RawMovieLens:
    layout = detect_layout(folder)
    parsers = {"ml-1m": parse_ml1m, "ml-10m": parse_ml10m, "ml-100k": parse_ml100k,
               "ml-latest": parse_latest}
    return parsers[layout](folder)


# --- helpers ------------------------------------------------------------------------------


def _read_lines(path: Path, encoding: str) -> list[str]:
    try:
        text = path.read_bytes().decode(encoding)
    except FileNotFoundError:
        raise missing(path) from None
    except UnicodeDecodeError as e:
        raise RecError(f"{path}: not valid {encoding} text ({e.reason} at byte {e.start})")
    return text.splitlines()


def is_id(text: str) -> bool:
    """An id of the raw files: ASCII digits, small enough for the int64 arrays."""
    return text.isascii() and text.isdigit() and int(text) < 2 ** 63


def raw_id(text: str) -> int:
    """is_id's value, or ValueError (the caller names the line)."""
    text = text.strip()
    if not is_id(text):
        raise ValueError(text)
    return int(text)


def _fields(path: Path, sep: str, lines: list[str] | None = None):
    """(line number, line, its fields) of each non-blank line of `path` (or of `lines` read
    from it; by default it is read as latin-1)."""
    for i, line in enumerate(_read_lines(path, "latin-1") if lines is None else lines, start=1):
        if line.strip():
            yield i, line, line.split(sep)


def _with_demographics(uid, gender, age, occ, movies: tuple, ratings: tuple,
                       **extra) -> RawMovieLens:
    """The raw tables, from the parsed users, (ids, titles, genres) and the ratings."""
    as_ids = lambda values: np.array(values, dtype=np.int64)  # noqa: E731
    return RawMovieLens(
        user_ids=as_ids(uid), gender=as_ids(gender), age=as_ids(age), occupation=as_ids(occ),
        movie_ids=as_ids(movies[0]), titles=movies[1], movie_genres=movies[2],
        rating_users=ratings[0], rating_movies=ratings[1], rating_values=ratings[2],
        rating_times=ratings[3], **extra)


def _title_genres_lines(path: Path, lines: list[str], sep: str,
                        no_genre: str | None = None) -> tuple[list, list, list]:
    ids, titles, genres = [], [], []
    for i, line, parts in _fields(path, sep, lines):
        if len(parts) != 3 or not is_id(parts[0].strip()):
            raise bad_line(path, i, line, "movie_id::title::genre|genre")
        ids.append(int(parts[0]))
        titles.append(parts[1].strip())
        genres.append([g for g in parts[2].strip().split("|") if g and g != no_genre])
    return ids, titles, genres


# --- ml-1m (and synthetic) ----------------------------------------------------------------

ML1M_RATING = "user::movie::rating::timestamp"


def parse_ml1m(folder: Path) -> RawMovieLens:
    users_path = folder / "users.dat"
    uid, gender, age, occ = [], [], [], []
    age_index = {code: i + 1 for i, code in enumerate(ML1M_AGES)}
    for i, line, parts in _fields(users_path, "::"):
        try:
            if len(parts) != 5 or parts[1] not in ("M", "F"):
                raise ValueError
            u, a, o = raw_id(parts[0]), age_index[int(parts[2])], int(parts[3])
            if not 0 <= o <= 20:
                raise ValueError
        except (ValueError, KeyError):
            raise bad_line(users_path, i, line, "user::M|F::age code::occupation 0-20::zip")
        uid.append(u)
        gender.append(1 if parts[1] == "M" else 2)
        age.append(a)
        occ.append(o + 1)
    movies_path = folder / "movies.dat"
    movies = _title_genres_lines(movies_path, _read_lines(movies_path, "latin-1"), "::")
    ratings = read_ratings(folder / "ratings.dat", b"::", ML1M_RATING,
                           Range(2, 1, 5, "rating", ML1M_RATING))
    return _with_demographics(uid, gender, age, occ, movies, ratings)


# --- ml-10m -------------------------------------------------------------------------------

NO_GENRES = "(no genres listed)"


def _without_demographics(movie_ids: list[int], titles: list[str], genres: list[list[str]],
                          ratings: tuple) -> RawMovieLens:
    """Users are the ones the ratings name; gender, age and occupation unknown (index 0)."""
    user_ids = distinct_ids(ratings[0])
    zeros = np.zeros(len(user_ids), dtype=np.int64)
    return RawMovieLens(
        user_ids=user_ids, gender=zeros, age=zeros.copy(), occupation=zeros.copy(),
        movie_ids=np.array(movie_ids, dtype=np.int64), titles=titles, movie_genres=genres,
        rating_users=ratings[0], rating_movies=ratings[1], rating_values=ratings[2],
        rating_times=ratings[3], ages=["unknown"], occupations=["unknown"],
        has_demographics=False, rating_range=(0.5, 5.0), codes={})


def parse_ml10m(folder: Path) -> RawMovieLens:
    """MovieLens 10M (ml-10M100K/): movies.dat and ratings.dat ('::'), half stars 0.5-5."""
    movies_path = folder / "movies.dat"
    try:  # the 10M files are UTF-8 as far as is known; latin-1 (as in ml-1m) otherwise
        lines = _read_lines(movies_path, "utf-8")
    except RecError:
        lines = _read_lines(movies_path, "latin-1")
    mids, titles, genres = _title_genres_lines(movies_path, lines, "::", NO_GENRES)
    ratings = read_ratings(folder / "ratings.dat", b"::", ML1M_RATING,
                           Range(2, 0.5, 5, "rating", ML1M_RATING), dtype=np.float64)
    return _without_demographics(mids, titles, genres, ratings)


# --- ml-100k ------------------------------------------------------------------------------


AGE_YEARS = 120  # ml-100k's ages a person may give, in years: 0 to 119


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
    for i, line, parts in _fields(users_path, "|"):
        try:
            if len(parts) != 5 or parts[2] not in ("M", "F"):
                raise ValueError
            u, a = raw_id(parts[0]), int(parts[1])
        except ValueError:
            raise bad_line(users_path, i, line, "user|age|M|F|occupation|zip")
        if parts[3] not in occ_index:
            occ_index[parts[3]] = len(occupations)
            occupations.append(parts[3])
        uid.append(u)
        age.append(_age_bucket(a))
        gender.append(1 if parts[2] == "M" else 2)
        occ.append(occ_index[parts[3]])
    items_path = folder / "u.item"
    mids, titles, genres = [], [], []
    for i, line, parts in _fields(items_path, "|"):
        flags = parts[5:]
        if len(parts) != 24 or not is_id(parts[0]) or any(f not in ("0", "1") for f in flags):
            raise bad_line(items_path, i, line, "movie|title|date||url|19 genre flags")
        mids.append(int(parts[0]))
        titles.append(parts[1].strip())
        genres.append([ML100K_GENRES[k] for k, f in enumerate(flags) if f == "1" and k > 0])
    ratings = read_ratings(folder / "u.data", b"\t", "user<TAB>movie<TAB>rating<TAB>timestamp",
                           Range(2, 1, 5, "rating", "a rating from 1 to 5"))
    # its own numbers: ages in years (as u.user holds them), occupations by name only
    codes = {"age": {str(years): _age_bucket(years) for years in range(AGE_YEARS)},
             "occupation": {}}
    return _with_demographics(uid, gender, age, occ, (mids, titles, genres), ratings,
                              occupations=occupations, codes=codes)


# --- ml-latest(-small) --------------------------------------------------------------------


def parse_latest(folder: Path) -> RawMovieLens:
    movies_path = folder / "movies.csv"
    lines = _read_lines(movies_path, "utf-8")
    mids, titles, genres = [], [], []
    reader = csv.reader(io.StringIO("\n".join(lines[1:])))
    for i, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != 3 or not is_id(row[0]):
            raise bad_line(movies_path, i, ",".join(row), "movieId,title,genres")
        mids.append(int(row[0]))
        titles.append(row[1].strip())
        genres.append([g for g in row[2].split("|") if g and g != NO_GENRES])
    expected = "userId,movieId,rating,timestamp"
    ratings = read_ratings(folder / "ratings.csv", b",", expected,
                           Range(2, 0.5, 5, "rating", expected), header=True, dtype=np.float64)
    return _without_demographics(mids, titles, genres, ratings)
