"""The tuning slice: every choice a stage makes (epochs, early stopping, λ, K, the rank
stage's labels and epochs) is made on it, never on the evaluation split.

`tuning_view(ds)` is a Dataset of the same shape (users, movies, vocab) whose ratings are
the TRAIN ratings of `ds` alone, re-split the way `ds` was split (its vocab.split method):

    random     a TUNE_RATIO share of the training ratings, drawn by a hash of (user, movie,
               seed): a pair is in the slice or not whatever else the dataset holds
    time       the training ratings after a global cutoff (the TUNE_RATIO quantile from the
               end of the training timestamps)
    time-user  each user's own latest TUNE_RATIO of their training ratings
    users      a TUNE_RATIO share of the training users (hash of user, seed), each with
               GIVEN_RATIO of their ratings given (hash of the pair), the rest to predict

In the view the slice is VAL (and GIVEN for the users kind) and the rest TRAIN; the
dataset's own VAL and GIVEN ratings are not in it at all. So whatever trains or chooses on
the view is a function of the training ratings (and the split's seed) alone: a model
trained twice on the same training ratings is identical, whatever the validation ratings
say (tests/test_tuning.py).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rec.datasets.contract import GIVEN, TRAIN, VAL, Dataset
from rec.datasets.splits import GIVEN_RATIO, user_time_split  # the same share as --split users

TUNE_RATIO = 0.1
KINDS = ("random", "time", "time-user", "users")


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a uint64 hash with every input bit reaching every output."""
    x = x.astype(np.uint64)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


def uniform_hash(*keys: np.ndarray, seed: int = 0) -> np.ndarray:
    """A number in [0, 1) per row of the integer `keys`, a pure function of them and seed."""
    h = _mix(np.full(len(keys[0]), seed & 0xFFFFFFFFFFFFFFFF, dtype=np.uint64) + np.uint64(1))
    for k in keys:
        with np.errstate(over="ignore"):
            h = _mix(h ^ (np.asarray(k).astype(np.int64).astype(np.uint64)
                          * np.uint64(0x9E3779B97F4A7C15)))
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def tuning_kind(ds: Dataset) -> str:
    method = ds.vocab.split.get("method", "random")
    return method if method in KINDS else "random"


def tuning_seed(ds: Dataset) -> int:
    seed = ds.vocab.split.get("seed")
    return int(seed) if seed is not None else 0


def slice_codes(users: np.ndarray, movies: np.ndarray, times: np.ndarray, kind: str,
                seed: int, ratio: float = TUNE_RATIO) -> np.ndarray:
    """TRAIN / VAL / GIVEN code of each training rating in the tuning view (see above)."""
    n = len(users)
    codes = np.full(n, TRAIN, dtype=np.uint8)
    if not n:
        return codes
    if kind == "random":
        codes[uniform_hash(users, movies, seed=seed) < ratio] = VAL
    elif kind == "time":
        cutoff = np.quantile(times, 1.0 - ratio, method="higher")
        later = times > cutoff
        if not later.any():  # every timestamp equal: fall back on the pair hash
            later = uniform_hash(users, movies, seed=seed) < ratio
        codes[later] = VAL
    elif kind == "time-user":
        codes = user_time_split(users, times, ratio)
    elif kind == "users":
        counts = np.bincount(users)
        held = (uniform_hash(np.arange(len(counts)), seed=seed) < ratio) & (counts >= 2)
        in_held = held[users]
        given = uniform_hash(users, movies, seed=seed + 1) < GIVEN_RATIO
        codes[in_held & given] = GIVEN
        codes[in_held & ~given] = VAL
    else:
        raise ValueError(f"unknown tuning kind {kind!r}")
    return codes


def tuning_view(ds: Dataset, ratio: float = TUNE_RATIO) -> Dataset:
    """The Dataset the choices are made on (see the module docstring)."""
    train = ds.split == TRAIN
    users, movies = ds.rating_users[train], ds.rating_movies[train]
    values, times = ds.rating_values[train], ds.rating_times[train]
    kind = tuning_kind(ds)
    codes = slice_codes(users, movies, times, kind, tuning_seed(ds), ratio)
    vocab = dataclasses.replace(ds.vocab, split={**ds.vocab.split, "tuning": {
        "kind": kind, "ratio": ratio, "seed": tuning_seed(ds)}})
    return dataclasses.replace(ds, vocab=vocab, rating_users=users, rating_movies=movies,
                               rating_values=values, rating_times=times, split=codes,
                               fingerprints=None)


def describe(ds: Dataset, ratio: float = TUNE_RATIO) -> dict:
    """How the slice is drawn, for `selection` in metrics and eval.json."""
    return {"kind": tuning_kind(ds), "ratio": ratio, "seed": tuning_seed(ds),
            "from": "the training ratings only (the evaluation split is never read)"}
