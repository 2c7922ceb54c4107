"""A parsed MovieLens dataset -> the .npy contract (rec/datasets/contract.py), what
`rec preprocess` writes to output/dataset/.

Raw ids become dense indices, titles become word ids, genres become genre ids (0 is padding
in both), repeated (user, movie) ratings keep the latest, and the train/validation split is
drawn once (rec/datasets/splits.py) and saved with the arrays, so every later stage and any
outside tool evaluates on the same rows. `build` makes the arrays, `write_dataset` seals
them and swaps them in whole, `read_raw` reads one version of the raw folder.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np

from rec.console import warn
from rec.datasets.contract import ARRAY_FILES, GENDERS, GENRES, GIVEN, TRAIN, VAL, Vocab
from rec.datasets.movielens import YEAR_RE, RawMovieLens, parse_folder
from rec.datasets.splits import GIVEN_RATIO, check_parts, latest_only, make_split
from rec.errors import UsageError
from rec.paths import VOCAB
from rec.storage import manifest, unit
from rec.storage.atomic import save_npy, write_json
from rec.storage.snapshot import read_unchanged

MAX_TITLE_WORDS = 15
WORD_RE = re.compile(r"(?:[^\W_]|')+")  # letters (any script), digits, apostrophes
MAP_STEP = 1 << 20  # ratings mapped per slice: keeps the mapping's temporaries small


def lookup(ids: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A function mapping values to their dense index (int32) in `ids`, the first position
    holding each; -1 where a value is not in `ids`. A lookup table when the ids are small
    non-negative integers (MovieLens ids are), a binary search otherwise."""
    ids = np.asarray(ids)
    if not len(ids):
        return lambda values: np.full(len(values), -1, dtype=np.int32)
    uniq, first = np.unique(ids, return_index=True)  # first occurrence of each id
    lo, hi = int(uniq[0]), int(uniq[-1])
    if lo >= 0 and hi <= max(1 << 22, 8 * len(ids)):
        table = np.full(hi + 2, -1, dtype=np.int32)  # table[hi + 1]: every value out of range
        table[uniq] = first
        return lambda values: table[np.where((values >= 0) & (values <= hi), values, hi + 1)]

    def search(values: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(uniq, values).clip(0, len(uniq) - 1)
        return np.where(uniq[pos] == values, first[pos], -1).astype(np.int32)
    return search


def map_ratings(raw: RawMovieLens, reuse: bool = False) -> tuple[np.ndarray, np.ndarray,
                                                                  np.ndarray, dict, list[str]]:
    """(user index, movie index, keep mask, report, examples of dropped ratings), in slices.

    reuse=True writes the indices over raw.rating_users / raw.rating_movies where they are
    int32 already (saving their size in memory); raw then holds indices, not raw ids."""
    n = len(raw.rating_users)

    def target(column: np.ndarray) -> np.ndarray:
        ok = reuse and column.dtype == np.int32 and column.flags.c_contiguous \
            and column.flags.writeable
        return column if ok else np.empty(n, dtype=np.int32)

    users, movies = target(raw.rating_users), target(raw.rating_movies)
    keep = np.empty(n, dtype=bool)
    unknown_users = unknown_movies = 0
    examples: list[str] = []
    user_index, movie_index = lookup(raw.user_ids), lookup(raw.movie_ids)
    for s in range(0, n, MAP_STEP):
        e = min(s + MAP_STEP, n)
        u = user_index(raw.rating_users[s:e])
        m = movie_index(raw.rating_movies[s:e])
        keep[s:e] = k = (u >= 0) & (m >= 0)
        unknown_users += int((u < 0).sum())
        unknown_movies += int(((m < 0) & (u >= 0)).sum())
        for i in np.flatnonzero(~k)[:3 - len(examples)]:  # before they are overwritten
            examples.append(f"user {raw.rating_users[s + i]} movie {raw.rating_movies[s + i]}")
        users[s:e], movies[s:e] = u, m
    report = {"unknown_user_ratings": unknown_users, "unknown_movie_ratings": unknown_movies}
    return users, movies, keep, report, examples


def title_words(title: str) -> list[str]:
    """Lower-cased words of a title without its trailing "(year)"."""
    return WORD_RE.findall(YEAR_RE.sub("", title).lower())


def padded(rows: list[list[int]], width: int) -> np.ndarray:
    out = np.zeros((len(rows), max(width, 1)), dtype=np.int64)
    for i, row in enumerate(rows):
        row = row[:width]
        out[i, : len(row)] = row
    return out


def build(raw: RawMovieLens, dataset: str, split: str, val_ratio: float, seed: int,
          reuse: bool = False) -> tuple[dict[str, np.ndarray], Vocab, dict]:
    """Turn parsed raw tables into the contract's arrays, vocab and a report of what was done.

    The rating arrays share memory with raw's where they can (values and times unless some
    ratings are dropped; with reuse=True also users and movies, whose raw ids are then
    overwritten by dense indices), so the peak stays near the size of the final arrays."""
    user_idx, movie_idx, keep, report, examples = map_ratings(raw, reuse)
    all_kept = bool(keep.all())
    if not all_kept:
        warn(f"dropped {int((~keep).sum())} ratings that reference unknown users or movies "
             f"(e.g. {', '.join(examples)})")

    def kept(column: np.ndarray, dtype) -> np.ndarray:
        return np.asarray(column if all_kept else column[keep], dtype=dtype)

    # genres: the MovieLens-1M order first, then any others the dataset uses, sorted
    used = {g for gs in raw.movie_genres for g in gs}
    genre_names = ["<pad>"] + [g for g in GENRES if g in used] + sorted(used - set(GENRES))
    genre_id = {g: i for i, g in enumerate(genre_names)}
    genre_rows = [[genre_id[g] for g in gs] for gs in raw.movie_genres]

    # title words: ids by frequency (then alphabetically), so the vocabulary is deterministic
    words = [title_words(t) for t in raw.titles]
    freq = Counter(w for ws in words for w in ws)
    word_names = ["<pad>"] + sorted(freq, key=lambda w: (-freq[w], w))
    word_id = {w: i for i, w in enumerate(word_names)}
    title_rows = [[word_id[w] for w in ws] for ws in words]
    longest = max((len(r) for r in title_rows), default=1)

    users = np.stack([np.arange(len(raw.user_ids)), raw.gender, raw.age, raw.occupation],
                     axis=1).astype(np.int64)
    r_users, r_movies = kept(user_idx, np.int32), kept(movie_idx, np.int32)
    r_values, r_times = kept(raw.rating_values, np.float32), kept(raw.rating_times, np.int64)
    del user_idx, movie_idx, keep  # free the mask before the split draws its permutation
    if not len(r_users):
        raise UsageError("no ratings to preprocess (the ratings file is empty, or names no "
                         "known user and movie); the previous dataset is kept")
    latest = latest_only(r_users, r_movies, r_times, len(raw.movie_ids))
    duplicates = 0 if latest is None else int(len(latest) - latest.sum())
    if duplicates:
        warn(f"{duplicates} ratings repeat a (user, movie) pair: kept the latest of each")
        r_users, r_movies, r_values, r_times = (a[latest] for a in (r_users, r_movies,
                                                                    r_values, r_times))
    del latest
    split_mask = make_split(split, r_users, r_times, val_ratio, seed)
    check_parts(split_mask, split, val_ratio)
    arrays = dict(zip(ARRAY_FILES, [  # in the contract's order
        users, padded(genre_rows, max((len(r) for r in genre_rows), default=1)),
        padded(title_rows, min(longest, MAX_TITLE_WORDS)), r_users, r_movies, r_values, r_times,
        split_mask]))
    years = []
    for t in raw.titles:
        m = YEAR_RE.search(t)
        years.append(int(m.group(1)) if m else None)
    vocab = Vocab(
        dataset=dataset, user_ids=raw.user_ids.tolist(), movie_ids=raw.movie_ids.tolist(),
        titles=list(raw.titles), years=years, genres=genre_names, title_words=word_names,
        genders=list(GENDERS), ages=list(raw.ages), occupations=list(raw.occupations),
        has_demographics=raw.has_demographics, rating_range=list(raw.rating_range),
        codes=raw.codes,
        split={"method": split, "val_ratio": val_ratio,
               "seed": seed if not split.startswith("time") else None},
    )
    if split == "users":
        vocab.split.update(given_ratio=GIVEN_RATIO, codes={
            str(TRAIN): "train", str(VAL): "to predict (held-out users)",
            str(GIVEN): "given (held-out users' known ratings, never trained on)"})
    if duplicates:  # in the summary when there were some
        report["duplicate_ratings"] = duplicates
    report.update(users=len(raw.user_ids), movies=len(raw.movie_ids), ratings=len(r_users),
                  train=int((split_mask == TRAIN).sum()), validation=int((split_mask == VAL).sum()),
                  **({"given": int((split_mask == GIVEN).sum()),
                      "held_out_users": int(len(np.unique(r_users[split_mask == GIVEN])))}
                     if split == "users" else {}),
                  genres=len(genre_names) - 1, title_words=len(word_names) - 1)
    return arrays, vocab, report


def write_dataset(out_dir: Path, arrays: dict[str, np.ndarray], vocab: Vocab) -> None:
    """Write every file into a fresh folder, seal it (rec.storage.unit: its unit.json, whose
    run id is a digest of the files', so the same dataset is the same folder byte for byte),
    then swap it in: readers never see a mix."""
    with unit.sealed_dir(out_dir, unit.CONTENT) as tmp:
        for name, array in arrays.items():
            save_npy(tmp / name, array)
        write_json(tmp / VOCAB, vocab.to_json())


def read_raw(folder: Path) -> tuple[RawMovieLens, str | None]:
    """The raw dataset in `folder` and the fingerprint of the version read: one version, even
    when a `rec download` for another output folder replaces the shared data folder meanwhile
    (rec.storage.snapshot.read_unchanged: read again, and said on stderr)."""
    def load():
        return parse_folder(folder), manifest.read_version(folder)

    def changed():
        warn(f"{folder} was replaced while it was read (a `rec download` for another output "
             "folder?): reading the new version")

    return read_unchanged(folder, load, changed)
