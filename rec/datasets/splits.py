"""The train / validation splits `rec preprocess` saves (numpy only, pure functions).

    random     round(n * val_ratio) ratings drawn uniformly (seeded)
    time       a global cutoff: every rating after one timestamp is validation, so no
               training rating is later than a validation one (no leakage from the future)
    time-user  each user's own latest val_ratio of their ratings (the per-user protocol;
               training still holds other users' later ratings)
    users      held-out users: val_ratio of the users, GIVEN_RATIO of their ratings given,
               the rest to predict

Codes: rec.datasets.contract TRAIN / VAL / GIVEN. rec.datasets.tuning carves the tuning
slice out of the training ratings with the same kinds.
"""

from __future__ import annotations

import numpy as np

from rec.datasets.contract import GIVEN, TRAIN, VAL
from rec.errors import UsageError

SPLITS = ("random", "time", "time-user", "users")
GIVEN_RATIO = 0.8  # --split users: share of a held-out user's ratings that are given
MAP_STEP = 1 << 20  # ratings counted per slice: keeps bincount's int64 copies small


def global_time_split(times: np.ndarray, val_ratio: float) -> np.ndarray:
    """Every rating strictly later than one cutoff timestamp goes to validation: the
    timestamp of the (n - round(n * val_ratio))-th rating in time order. Ratings at the
    cutoff's second stay in training, so validation may hold a little fewer than the
    ratio; no training rating is later than any validation rating."""
    n = len(times)
    split = np.full(n, TRAIN, dtype=np.uint8)
    n_val = int(round(n * val_ratio))
    if not n or not n_val:
        return split
    ordered = np.sort(times)
    cutoff = ordered[n - n_val - 1] if n_val < n else ordered[0] - 1
    split[times > cutoff] = VAL
    return split

def random_split(n: int, val_ratio: float, seed: int) -> np.ndarray:
    """Mask with round(n * val_ratio) validation rows drawn uniformly (seeded)."""
    split = np.full(n, TRAIN, dtype=np.uint8)
    # The same permutation as rng.permutation(n), in int32 where it fits (half the memory).
    perm = np.arange(n, dtype=np.int32 if n <= np.iinfo(np.int32).max else np.int64)
    np.random.default_rng(seed).shuffle(perm)
    split[perm[: int(round(n * val_ratio))]] = VAL
    return split


def user_time_split(users: np.ndarray, times: np.ndarray, val_ratio: float) -> np.ndarray:
    """Per user, the latest round(count * val_ratio) ratings (at least one, if the user has
    two or more, and never all of them) go to validation. Ties in time keep file order."""
    n = len(users)
    split = np.full(n, TRAIN, dtype=np.uint8)
    if not n:
        return split
    order = np.lexsort((times, users))  # by user, then time; stable, so ties keep file order
    lo, hi = int(users.min()), int(users.max())
    if lo >= 0 and hi <= max(1 << 20, n // 8):  # dense indices: count them, no sorted copy
        counts = np.zeros(hi + 1, dtype=np.int64)
        for s in range(0, n, MAP_STEP):  # in slices: bincount makes an int64 copy
            counts += np.bincount(users[s:s + MAP_STEP], minlength=hi + 1)
        counts = counts[counts > 0]
        starts = np.r_[0, np.cumsum(counts)[:-1]]
    else:
        u_sorted = users[order]
        starts = np.flatnonzero(np.r_[True, u_sorted[1:] != u_sorted[:-1]])
        del u_sorted
        counts = np.diff(np.r_[starts, n])
    n_val = np.where(counts >= 2, np.maximum(1, np.rint(counts * val_ratio)), 0).astype(np.int64)
    n_val = np.minimum(n_val, counts - 1)  # every user keeps at least one training rating
    # Each user's last n_val positions in sorted order: +1 where the run starts, -1 after it.
    ends = starts + counts
    edges = np.zeros(n + 1, dtype=np.int8)
    edges[(ends - n_val)[n_val > 0]] += 1
    edges[ends[n_val > 0]] -= 1
    np.cumsum(edges, out=edges)  # 1 inside the runs, 0 elsewhere
    split[order[edges[:n].view(bool)]] = VAL
    return split


def users_split(users: np.ndarray, val_ratio: float, seed: int,
                given_ratio: float = GIVEN_RATIO) -> np.ndarray:
    """Strong generalisation: a seeded round(val_ratio * eligible) of the users with two or
    more ratings are held out entirely; of each one's ratings a seeded round(count *
    given_ratio) (at least one, never all) are GIVEN, the rest VAL (to predict). Every
    other rating is TRAIN. A function of the seed and the ratings' users alone."""
    n = len(users)
    split = np.full(n, TRAIN, dtype=np.uint8)
    if not n:
        return split
    counts = np.bincount(users)
    eligible = np.flatnonzero(counts >= 2)
    rng = np.random.default_rng(seed)
    held = np.sort(rng.permutation(eligible)[: int(round(len(eligible) * val_ratio))])
    rows = np.flatnonzero(np.isin(users, held))
    # within each held-out user, a seeded random order: rank < n_given is given
    keys = rng.random(len(rows))
    order = rows[np.lexsort((keys, users[rows]))]
    u_sorted = users[order]
    starts = np.searchsorted(u_sorted, held)
    rank = np.arange(len(order)) - np.repeat(starts, counts[held])
    n_given = np.clip(np.rint(counts[held] * given_ratio), 1, counts[held] - 1).astype(np.int64)
    given = rank < np.repeat(n_given, counts[held])
    split[order[given]] = GIVEN
    split[order[~given]] = VAL
    return split


def latest_only(users: np.ndarray, movies: np.ndarray, times: np.ndarray,
                n_movies: int) -> np.ndarray | None:
    """Mask keeping one rating of each (user, movie) pair, the latest (the later line of
    the file among equal times); None when no pair repeats (the common case: one sort)."""
    key = users.astype(np.int64) * max(n_movies, 1) + movies
    sorted_key = np.sort(key)
    if not (sorted_key[1:] == sorted_key[:-1]).any():
        return None
    del sorted_key
    order = np.lexsort((times, key))  # by pair, then time; stable, so ties keep file order
    key = key[order]
    keep = np.zeros(len(key), dtype=bool)
    keep[order[np.r_[key[1:] != key[:-1], True]]] = True  # the last of each pair
    return keep


def make_split(split: str, users: np.ndarray, times: np.ndarray, val_ratio: float,
               seed: int) -> np.ndarray:
    """The split codes of --split `split` (one of SPLITS)."""
    if split == "random":
        return random_split(len(users), val_ratio, seed)
    if split == "users":
        return users_split(users, val_ratio, seed)
    if split == "time":
        return global_time_split(times, val_ratio)
    return user_time_split(users, times, val_ratio)


def check_parts(split_mask: np.ndarray, split: str, val_ratio: float) -> None:
    """Refuse (exit 2) a split with no training part, or a time split with no validation
    part (a random one may: tiny files are preprocessed to look at them)."""
    n_val = int((split_mask == VAL).sum())
    if n_val and not (split_mask == TRAIN).any():
        why = f"--val-ratio {val_ratio} of {len(split_mask)} ratings sends them all to validation"
    elif not n_val and split == "time":
        why = (f"--val-ratio {val_ratio} puts no rating after the cutoff (all share its "
               "timestamp)")
    elif not n_val and split == "time-user":
        why = ("every user has a single rating, and --split time-user keeps a user's only rating "
               "for training: use --split random, or data with several ratings per user")
    elif not n_val and split == "users":
        why = (f"--val-ratio {val_ratio} holds out no user (only users with two or more "
               "ratings can be held out)")
    else:
        return
    part = "training" if n_val else "validation"
    raise UsageError(f"the {part} part would be empty: {why}; the previous dataset is kept")



time_split = user_time_split  # the name it had before the global cutoff
