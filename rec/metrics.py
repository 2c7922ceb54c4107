"""Every metric (RMSE, MAE, HR@k, NDCG@k, AUC, log loss) and the rating baselines they are
compared with: numpy (and scipy) only, no files.

Also the numeric pieces serving shares, each with exactly the bits of its plain numpy or
scipy form (tests/test_serving_exact.py): rows_times (CSR x dense a block of columns at a
time, the blocks copied once with ColumnBlocks), row_sums (np.add.at a column at a time),
EASE's fit is rec.ease's. ranking_metrics(threads=2) ranks two chunks of users at
once, with the same result; a model's scores given as a rec.shortlists.Shortlist are
ranked there (smallest_k, argpartition a few rows at a time, is there too)."""

from __future__ import annotations

import threading

import numpy as np

from rec.ease import EASE_LAMBDA, binary_csr, ease_from_gram, sparse_gram
from rec.shortlists import (Shortlist, dense_top, shared_order_scorer, shortlist_top,
                             smallest_k)  # noqa: F401 (smallest_k: its home before)


def rmse_mae(pred: np.ndarray, truth: np.ndarray, clip=None) -> tuple[float, float]:
    if clip is not None:
        pred = np.clip(pred, clip[0], clip[1])
    err = np.asarray(pred, np.float64) - np.asarray(truth, np.float64)
    return float(np.sqrt(np.mean(err ** 2))), float(np.mean(np.abs(err)))


def fit_biases(users: np.ndarray, movies: np.ndarray, ratings: np.ndarray, n_users: int,
               n_movies: int, reg: float = 5.0, iterations: int = 10):
    """The user + movie bias baseline: r ~ mean + b_u + b_m, shrunk towards 0 by `reg`,
    fitted by alternating closed-form updates. Returns (mean, b_u, b_m)."""
    mean = float(ratings.mean())
    b_u, b_m = np.zeros(n_users), np.zeros(n_movies)
    n_u = np.bincount(users, minlength=n_users)
    n_m = np.bincount(movies, minlength=n_movies)
    for _ in range(iterations):
        b_m = np.bincount(movies, ratings - mean - b_u[users], n_movies) / (n_m + reg)
        b_u = np.bincount(users, ratings - mean - b_m[movies], n_users) / (n_u + reg)
    return mean, b_u, b_m


LONG_TAIL = 20  # a movie with fewer training ratings than this is "one almost nobody saw"
EASE_MAX_MOVIES = 20_000  # EASE inverts a movies x movies matrix: skipped above this


def popularity_scorer(n_movies: int, train_movies: np.ndarray):
    """The popularity baseline's score_chunk: every user gets the training counts (as a
    Shortlist of the most-rated movies)."""
    return shared_order_scorer(np.bincount(train_movies, minlength=n_movies).astype(np.float32))


def ease_scorer(n_users: int, n_movies: int, train_users: np.ndarray,
                train_movies: np.ndarray, lam: float = EASE_LAMBDA):
    """EASE (Steck 2019) on the binary training matrix X: B = I - P / diag(P) with
    P = (X'X + lam I)^-1 and a zero diagonal; a user's scores are X_u B. score_chunk."""
    if n_users < n_movies:
        x = np.zeros((n_users, n_movies), np.float32)
        x[train_users, train_movies] = 1.0
        return dual_ease_scorer(x, lam)
    rows = binary_csr(train_users, train_movies, (n_users, n_movies))
    b = ColumnBlocks(ease_from_gram(sparse_gram(rows), lam, overwrite=True))
    # a user's rated rows of B summed (CSR times dense): ml-1m 2.5x faster than x[block] @ b,
    # and a block of B's columns at a time as fast again (rows_times: the same bits)
    return lambda block: rows_times(rows[block], b)


DUAL_BLOCK = 1024  # users per product with X in dual_ease_scorer


def dual_ease_scorer(x: np.ndarray, lam: float = EASE_LAMBDA):
    """ease_scorer's scores X B of the users of `x` (binary, float32) without B, when there
    are fewer users than movies (ml-latest-small: 610 x 9,742). By Woodbury,
    P = (X'X + lam I)^-1 = (I - X'KX) / lam with K = (XX' + lam I)^-1, users x users; so
    X P = K X, diag(P) = (1 - diag(X'KX)) / lam, and X B = X - K X / diag(P). A users² inverse
    and two users² x movies products instead of a movies³ Cholesky inverse (ml-latest-small:
    0.3 s against 20 s; the gram and P alone are 760 MB there). The same scores up to
    float32 rounding (2-5e-6 of scores near 1 on ml-latest-small and ml-100k, where every
    metric is the same to the 6 decimals of eval.json)."""
    n = len(x)
    k = np.linalg.inv(np.asarray(x @ x.T, np.float64) + lam * np.eye(n))  # counts: exact
    k32 = k.astype(np.float32)
    diag = np.zeros(x.shape[1], np.float64)  # diag(X'KX), a block of users at a time
    for lo in range(0, n, DUAL_BLOCK):
        diag += np.einsum("um,um->m", x[lo:lo + DUAL_BLOCK], k32[lo:lo + DUAL_BLOCK] @ x)
    scale = (lam / (1.0 - diag)).astype(np.float32)  # 1 / diag(P)
    return lambda block: x[block] - (k32[block] @ x) * scale


# x @ matrix for a scipy CSR x (a block of users' rated movies) and a dense float32 matrix
# (EASE's B, PureSVD's V), a block of the matrix's columns at a time. scipy adds each user's
# rated rows of the matrix one after the other, in the CSR's column order; a block of
# columns does the same additions in the same order for those columns, so the result is
# the same to the bit. What changes is where the rows come from: EASE's B is 55 MB on
# ml-1m, far past the caches, and every user re-reads the rows they rated from memory; a
# block of COLUMN_BLOCK_BYTES stays in the cache while every user of the block is summed
# (ml-1m, 1,024 users: 0.4 s against 0.8-1.3 s). 4 MB (L3, not the 1 MB L2 of a core):
# each rated row then adds 4x as many columns in one scipy loop, and the per-row overhead
# is paid a quarter as often (1,024 ml-1m users 0.13 s against 0.17 at 1 MB, ml-latest-
# small's 610 users 0.26 against 0.39; the same bits). scipy releases the GIL in the
# product, so two threads scoring two blocks of users run on two cores.
COLUMN_BLOCK_BYTES = 4 << 20  # one block of the matrix's columns
MIN_COLUMNS = 16  # narrower blocks pay scipy's per-call overhead more than they save


def column_block(n_rows: int, n_cols: int) -> int:
    """Columns per block of a float32 (n_rows, n_cols) matrix (at least MIN_COLUMNS)."""
    return max(MIN_COLUMNS, min(n_cols, COLUMN_BLOCK_BYTES // (4 * max(n_rows, 1))))


class ColumnBlocks:
    """A float32 matrix (EASE's B) as rows_times' contiguous blocks of its columns, copied
    once, at the first product, instead of block by block in every product (0.05 s of each
    1,024 ml-1m users' EASE scores); the matrix itself is then let go. Until then a few
    users' row sums read the matrix as given (`rec recommend 42` copies nothing). Safe to
    use from several threads."""

    def __init__(self, matrix: np.ndarray):
        self.shape = matrix.shape
        self._matrix, self._blocks = matrix, None
        self._copying = threading.Lock()

    @property
    def blocks(self) -> list[np.ndarray]:
        """The blocks, copied from the matrix on first use (call it early to copy them
        before other big arrays exist: the copy holds the matrix twice)."""
        with self._copying:
            if self._blocks is None:
                width = column_block(*self.shape)
                self._blocks = [np.ascontiguousarray(self._matrix[:, j:j + width], np.float32)
                                for j in range(0, max(self.shape[1], 1), width)]
                self._matrix = None
        return self._blocks

    def row_sums(self, rows: np.ndarray) -> np.ndarray:
        """matrix[rows].sum(axis=0): the same bits (each column's rows added in order)."""
        matrix = self._matrix
        if matrix is not None:
            return matrix[rows].sum(axis=0)
        return np.concatenate([block[rows].sum(axis=0) for block in self._blocks])


def rows_times(x, matrix: np.ndarray | ColumnBlocks) -> np.ndarray:
    """x @ matrix (float32, (x rows, matrix columns)) for scipy CSR x: the same bits."""
    n_rows, n_cols = matrix.shape
    width = column_block(n_rows, n_cols)
    if isinstance(matrix, ColumnBlocks):
        blocks = matrix.blocks
    elif width >= n_cols:
        return np.asarray(x @ matrix, np.float32)
    else:  # scipy needs each block contiguous: a copy of it (width columns), not of the matrix
        blocks = (np.ascontiguousarray(matrix[:, j:j + width]) for j in range(0, n_cols, width))
    out = np.empty((x.shape[0], n_cols), np.float32)
    for j, block in zip(range(0, n_cols, width), blocks):
        out[:, j:j + width] = x @ block
    return out


def row_sums(rows: np.ndarray, values: np.ndarray, n_rows: int) -> np.ndarray:
    """What np.add.at(zeros, rows, values) gives ((n_rows, ...) float, values' dtype), the
    same bits: a column at a time (np.add.at of 1-D arrays has a fast loop, 0.3 ms for
    170k values, where the (170k, 19) genre rows of 1,024 ml-1m users took 40 ms); each
    entry's values are still added one after the other in the order given."""
    out = np.zeros((*values.shape[1:], n_rows), values.dtype)  # a column per row of out
    flat = out.reshape(-1, n_rows)
    columns = values.reshape(len(values), len(flat)).T
    for column, into in zip(columns, flat):
        np.add.at(into, rows, np.ascontiguousarray(column))
    return np.moveaxis(out, -1, 0).copy()


DENSE_ELEMENTS = 1 << 23  # the most (users x movies) entries one chunk of users may hold


def dense_chunk(n_movies: int, at_most: int = 1024) -> int:
    """Users per chunk of a dense (users x catalogue) computation: `at_most` (1024), fewer
    when the catalogue is so large that the chunk would pass DENSE_ELEMENTS entries (32 MiB
    in float32: 134 users at ml-25m's 62k movies)."""
    return max(1, min(at_most, DENSE_ELEMENTS // max(n_movies, 1)))


# The rank stage's chunks (recommend, evaluate) are smaller: its feature rows (users x
# candidates x features) for 1,024 ml-1m users are 48 MB, above the 32 MB past which
# glibc's malloc always maps fresh pages, so every chunk faulted them in again: `recommend
# --all` 1-2 s of system time (0.3 s at 512 users), 3.2-4.5 s wall (3.2-3.5), a peak of
# 740 MB (500); evaluate 4.5-4.9 s (4.3-4.7), 840-910 MB (640)
RANK_CHUNK_USERS = 512


class PairsByUser:
    """(user, movie) pairs, sorted by user once, so that a block of users' own pairs are
    one slice of them (ranking_metrics' seen and relevant movies, validation's seen ones)."""

    def __init__(self, users: np.ndarray, movies: np.ndarray):
        order = np.argsort(users, kind="stable")
        self.users, self.movies = users[order], movies[order]

    def in_block(self, block: np.ndarray, row_of: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row in the block, movie) of the pairs of `block`'s users (sorted indices);
        `row_of`: block_rows(block, ...)."""
        lo = np.searchsorted(self.users, block[0])
        hi = np.searchsorted(self.users, block[-1], side="right")
        rows = row_of[self.users[lo:hi]]
        keep = rows >= 0
        return rows[keep], self.movies[lo:hi][keep]


def block_rows(block: np.ndarray, n_users: int) -> np.ndarray:
    """Each user's row in `block`, -1 for the users outside it."""
    row_of = np.full(n_users, -1)
    row_of[block] = np.arange(len(block))
    return row_of


def ranking_metrics(score_chunk, n_users: int, n_movies: int, seen_users: np.ndarray,
                    seen_movies: np.ndarray, relevant_users: np.ndarray,
                    relevant_movies: np.ndarray, k: int = 10, chunk: int | None = None,
                    movie_counts: np.ndarray | None = None, threads: int = 1,
                    progress=None) -> dict:
    """HR@k and NDCG@k, averaged over users with at least one relevant movie.

    For each such user every movie they did not rate in training is ranked by
    `score_chunk(user_indices) -> (len, n_movies) scores`; HR@k is 1 when any relevant movie
    is in the top k, NDCG@k uses binary relevance (ideal DCG over min(#relevant, k)).
    With `movie_counts` (training ratings per movie) also long_tail@k, the share of the top-k
    slots on movies with fewer than LONG_TAIL training ratings, and coverage@k, the share
    of the catalogue that appears in anyone's top k (both over the same users).

    When score_chunk returns {name: scores} (several models scored from one shared
    computation, e.g. the recall channels and the ranked list over them), the result is
    {name: metrics}, each exactly what that model alone would get. Scores may come as a
    rec.shortlists.Shortlist (the columns that can be a row's best): the same metrics,
    without ranking the whole catalogue.

    `threads` > 1 scores and ranks that many chunks at once (score_chunk must then be safe
    to call from several threads): numpy and scipy release the GIL in their loops, so the
    cores share the work; the chunks are the same and their results are gathered in order,
    so the metrics are the same. `progress(i, n)`, when given, is called as the i-th of n
    blocks of users is done (evaluate's progress bar)."""
    chunk = chunk or dense_chunk(n_movies)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    users_with_rel = np.unique(relevant_users)
    seen_pairs = PairsByUser(seen_users, seen_movies)
    relevant_pairs = PairsByUser(relevant_users, relevant_movies)

    def rank_block(block: np.ndarray) -> tuple[bool, dict]:
        """(single, {name: (hits, ndcgs, top)}) of one chunk of users."""
        scored = score_chunk(block)
        single = not isinstance(scored, dict)
        row_of = block_rows(block, n_users)
        seen = seen_pairs.in_block(block, row_of)
        relevant = np.zeros((len(block), n_movies), dtype=bool)
        relevant[relevant_pairs.in_block(block, row_of)] = True
        n_rel = np.minimum(relevant.sum(axis=1), k)
        ideal = np.cumsum(discounts)[n_rel - 1]
        out = {}
        kk = min(k, n_movies)  # a catalogue smaller than k: rank all of it
        seen_mask = None  # (B, M) bool, for the scores given as a Shortlist
        for name, scores in ({None: scored} if single else scored).items():
            if isinstance(scores, Shortlist):
                if seen_mask is None:
                    seen_mask = np.zeros((len(block), n_movies), bool)
                    seen_mask[seen] = True
                top = shortlist_top(scores, seen_mask, *seen, kk)
            else:
                top = dense_top(scores, *seen, kk)
            gains = np.take_along_axis(relevant, top, 1)
            out[name] = (gains.any(axis=1), (gains * discounts[:kk]).sum(axis=1) / ideal, top)
        return single, out

    blocks = [users_with_rel[start: start + chunk]
              for start in range(0, len(users_with_rel), chunk)]
    found: dict = {}  # name -> (hits, ndcgs, tops)

    def gather(results) -> bool:
        single = True
        for i, (single, out) in enumerate(results, start=1):
            for name, parts in out.items():
                for into, part in zip(found.setdefault(name, ([], [], [])), parts):
                    into.append(part)
            if progress is not None:
                progress(i, len(blocks))
        return single
    if threads > 1 and len(blocks) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as pool:
            single = gather(pool.map(rank_block, blocks))  # in order, each as it is done
    else:
        single = gather(map(rank_block, blocks))
    out = {name: _summary(*lists, len(users_with_rel), n_movies, k, movie_counts)
           for name, lists in found.items()}
    if single:
        return out.get(None) or {f"hr@{k}": float("nan"), f"ndcg@{k}": float("nan"),
                                 "ranked_users": 0}
    return out


def _summary(hits, ndcgs, tops, n_ranked: int, n_movies: int, k: int,
             movie_counts: np.ndarray | None) -> dict:
    out = {f"hr@{k}": float(np.concatenate(hits).mean()),
           f"ndcg@{k}": float(np.concatenate(ndcgs).mean()), "ranked_users": int(n_ranked)}
    if movie_counts is not None:
        top = np.concatenate(tops)
        out[f"long_tail@{k}"] = float((movie_counts[top] < LONG_TAIL).mean())
        out[f"coverage@{k}"] = float(len(np.unique(top)) / n_movies)
    return out


def baseline_metrics(train: tuple, validation: tuple, clip, rank_args: dict, seed: int = 0,
                     step=lambda name: None, ease=None, popularity: dict | None = None,
                     ratings=None) -> tuple[dict, list[str]]:
    """({name: metrics}, notes): the baselines `rec evaluate` shows beside the model, each
    ranked as ranking_metrics(**rank_args) ranks it, on the same users. `train` and
    `validation` are (users, movies, ratings) arrays. Popularity (training counts); EASE at
    EASE_LAMBDA (skipped, with a note, above EASE_MAX_MOVIES movies); user + movie biases
    (also RMSE and MAE of their stars, clipped to `clip`; ranked by prediction); the global
    mean (RMSE, MAE; ranks in a random order seeded by `seed`). `step(name)` is called as
    each starts (progress). `ease`: a future of ease_metrics' result on the same training
    ratings and rank_args, computed meanwhile elsewhere (a thread), else computed here.
    `popularity`: its ranking_metrics when already computed (evaluate's popularity
    channel); `ratings`: a future of rating_baselines' result, as `ease`."""
    (tu, tm, tr), (vu, vm, vr) = train, validation
    n_users, n_movies = rank_args["n_users"], rank_args["n_movies"]
    step("popularity")
    baselines = {"popularity": popularity or ranking_metrics(popularity_scorer(n_movies, tm),
                                                             **rank_args)}
    notes = []
    step("EASE")
    if n_movies <= EASE_MAX_MOVIES:
        baselines["ease"] = ease.result() if ease is not None else \
            ease_metrics(n_users, n_movies, tu, tm, rank_args)
    else:
        notes.append(f"EASE skipped: {n_movies:,} movies (more than {EASE_MAX_MOVIES:,})")
    step("bias and global mean")
    baselines.update(ratings.result() if ratings is not None else
                     rating_baselines(train, validation, clip, rank_args, seed))
    return baselines, notes


def rating_baselines(train: tuple, validation: tuple, clip, rank_args: dict,
                     seed: int = 0) -> dict:
    """baseline_metrics' rating baselines: {"bias": ..., "global_mean": ...}."""
    (tu, tm, tr), (vu, vm, vr) = train, validation
    n_users, n_movies = rank_args["n_users"], rank_args["n_movies"]
    baselines = {}
    mu, b_u, b_m = fit_biases(tu, tm, tr, n_users, n_movies)
    b_rmse, b_mae = rmse_mae(mu + b_u[vu] + b_m[vm], vr, clip)
    # mu + b_u[block][:, None] + b_m[None, :]: each user's order is the movies' biases'
    bias = shared_order_scorer(b_m, lambda block: mu + b_u[block][:, None])
    baselines["bias"] = {**ranking_metrics(bias, **rank_args), "rmse": b_rmse, "mae": b_mae}
    mean = float(tr.mean())
    g_rmse, g_mae = rmse_mae(np.full(len(vr), mean), vr, clip)
    noise = np.random.default_rng(seed).random(n_movies)  # ties broken at random
    baselines["global_mean"] = {**ranking_metrics(shared_order_scorer(noise), **rank_args),
                                "rmse": g_rmse, "mae": g_mae}
    return baselines


def ease_metrics(n_users: int, n_movies: int, train_users: np.ndarray,
                 train_movies: np.ndarray, rank_args: dict) -> dict:
    """The EASE baseline's ranking_metrics(**rank_args): EASE at EASE_LAMBDA fitted on the
    training ratings (users, movies), its matrix dropped once they are ranked."""
    return ranking_metrics(ease_scorer(n_users, n_movies, train_users, train_movies),
                           **rank_args)


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney; tied scores count one half)."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    ranks = np.empty(len(s), dtype=np.float64)
    # average rank of each run of ties
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    ends = np.r_[starts[1:], len(s)]
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def logloss(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-7) -> float:
    p = np.clip(np.asarray(probs, dtype=np.float64), eps, 1 - eps)
    y = np.asarray(labels, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))) if len(y) else float("nan")
