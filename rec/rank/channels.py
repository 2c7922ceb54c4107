"""Recall channels and their candidates (numpy only; 组合推荐's first stage).

Four channels each score every movie for a user from what the user rated (their history):

    two_tower   the trained two-tower's order (rec.scoring.score of the saved vectors)
    ease        EASE (Steck 2019), item-item in closed form on the binary training matrix:
                B = I - P / diag(P), P = (X'X + λI)^-1 by a float32 Cholesky inverse
                (LAPACK potrf + potri, through scipy); a user's scores are x_u B, so a new
                user needs no refit. λ is chosen on the tuning slice (choose_settings)
    svd         PureSVD, the binary matrix's top singular vectors (rank chosen on the
                tuning slice): a smoother item-item view than EASE's
    popularity  training counts: what people with few ratings get

Candidates (rec.rank.features.Stack.candidates) are the union of each channel's top K
among the movies the user has not rated; rec.rank.serving.candidate_recall is the share of
relevant movies that reach the ranker: the ceiling of any ranked list over them.

A catalogue over EASE_MAX_MOVIES movies keeps EASE and PureSVD to the most-rated
EASE_MAX_MOVIES (the others score 0 there): B is EASE_MAX_MOVIES² float32, 400 MB at 10,000,
saved in output/features and read by every `rec recommend`; while λ is chosen the gram
matrix, one B and LAPACK's work share as much again each (about 1.2 GB). At 20,000 it would
be 1.6 GB on disk and per request, over 5 GB to fit, and each λ's Cholesky inverse eight
times the work (n³); the 10,000 most-rated movies of a MovieLens catalogue hold nearly all
its ratings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rec.datasets.contract import RELEVANT, TRAIN, VAL, Dataset
from rec.ease import UserSideEase, binary_csr, ease_from_gram, few_users
from rec.metrics import (ColumnBlocks, dense_chunk, ranking_metrics, rows_times,
                         smallest_k)
from rec.lanes import lane_product
from rec.paths import EASE as EASE_FILE

CHANNELS = ("two_tower", "ease", "svd", "popularity")
LAMBDAS = (50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0)
SVD_RANKS = (16, 32, 64, 128, 256)
EASE_MAX_MOVIES = 10_000
TUNE_USERS = 3000  # users of the tuning slice λ is chosen on (a seeded sample)


# --- EASE -------------------------------------------------------------------------------------


def ease_items(train_movies: np.ndarray, n_movies: int,
               at_most: int = EASE_MAX_MOVIES) -> np.ndarray:
    """The movies EASE models: those with a training rating, the most-rated `at_most`."""
    counts = np.bincount(train_movies, minlength=n_movies)
    rated = np.flatnonzero(counts > 0)
    if len(rated) > at_most:
        rated = np.sort(rated[np.argsort(-counts[rated], kind="stable")[:at_most]])
    return rated


def item_columns(items: np.ndarray, movies: np.ndarray, n_movies: int):
    """(keep, cols): which of `movies` are among `items`, and their column in `items`."""
    col = np.full(n_movies, -1, np.int64)
    col[items] = np.arange(len(items))
    cols = col[movies]
    keep = cols >= 0
    return keep, cols[keep]


GRAM_BLOCK_BYTES = 256 << 20  # a block of the sparse product X'X[:, j0:j1] at most this
DENSE_GRAM_WORK = 1e12  # users x items², the dense product's multiply-adds, at most this


def gram(users: np.ndarray, movies: np.ndarray, items: np.ndarray, n_movies: int) -> np.ndarray:
    """X'X (float32) of the binary user x item matrix of these ratings, over `items`.

    Dense, a block of users at a time (BLAS on every core), while users x items² stays
    under DENSE_GRAM_WORK (ml-1m: 0.08e12, 2 s); past it, X is sparse (scipy CSR, one
    core) and X'X is formed a block of columns at a time, each a sparse product made dense
    into the result, whose work is the sum over users of their ratings squared: at ml-25m's
    162k users and 20k movies the dense product would be 65e12 multiply-adds (20 minutes
    here), the sparse one about 1e10. Memory: the result, plus one block (a dense chunk of
    users, or at most GRAM_BLOCK_BYTES of sparse product)."""
    keep, cols = item_columns(items, movies, n_movies)
    uniq, rows = np.unique(users[keep], return_inverse=True)
    n = len(items)
    if len(uniq) * float(n) ** 2 <= DENSE_GRAM_WORK:
        return _dense_gram(rows, cols, len(uniq), n)
    x = binary_csr(rows.astype(np.int32), cols.astype(np.int32), (len(uniq), n))
    del rows, cols, keep  # a rating given twice counts once (binary_csr)
    xt, xc = x.T.tocsr(), x.tocsc()
    del x
    g = np.zeros((n, n), np.float32)
    width = max(1, min(n, GRAM_BLOCK_BYTES // (8 * max(n, 1))))  # value + index per entry
    for j in range(0, n, width):
        g[:, j:j + width] = (xt @ xc[:, j:j + width]).toarray()
    return g


def _dense_gram(rows: np.ndarray, cols: np.ndarray, n_rows: int, n: int) -> np.ndarray:
    order = np.argsort(rows, kind="stable")
    rows, cols = rows[order], cols[order]
    start = np.searchsorted(rows, np.arange(n_rows + 1))
    g = np.zeros((n, n), np.float32)
    block = dense_chunk(n, 2048)
    for s in range(0, n_rows, block):
        e = min(s + block, n_rows)
        x = np.zeros((e - s, n), np.float32)
        x[rows[start[s]:start[e]] - s, cols[start[s]:start[e]]] = 1.0
        g += x.T @ x
    return g


def binary_rows(items: np.ndarray, rows: np.ndarray, movies: np.ndarray, n_users: int,
                n_movies: int) -> np.ndarray:
    """(n_users, len(items)) float32: 1 where row r rated item i (movies outside `items`
    are left out)."""
    keep, cols = item_columns(items, movies, n_movies)
    x = np.zeros((n_users, len(items)), np.float32)
    x[rows[keep], cols] = 1.0
    return x


FEW_USERS = 32  # blocks of at most this many users sum their rows in numpy (no scipy)


def history_times(items: np.ndarray, rows: np.ndarray, movies: np.ndarray, n_users: int,
                  n_movies: int, matrix: np.ndarray) -> np.ndarray:
    """binary_rows(...) @ matrix without the dense binary rows: each user's rated rows of
    `matrix` summed (a movie rated twice counted once). A block of users goes through scipy
    CSR times dense, which adds just the rated rows (ml-1m, 1,024 users x 3,706 movies:
    0.22 s against 0.52 s for the dense product); a few users (`rec recommend 42`) sum
    them in numpy, sparing scipy.sparse's import (0.14 s, as long as the rest of the
    request)."""
    keep, c = item_columns(items, movies, n_movies)
    r = rows[keep]
    if n_users <= FEW_USERS:
        r, c = np.divmod(sorted_distinct(r * np.int64(len(items)) + c), np.int64(len(items)))
        out = np.zeros((n_users, matrix.shape[1]), np.float32)
        starts = np.searchsorted(r, np.arange(n_users + 1))
        blocked = isinstance(matrix, ColumnBlocks)
        for u in range(n_users):
            rated = c[starts[u]:starts[u + 1]]
            out[u] = matrix.row_sums(rated) if blocked else matrix[rated].sum(axis=0)
        return out
    return rows_times(binary_csr(r, c, (n_users, len(items))), matrix)  # scipy's bits


def sorted_distinct(values: np.ndarray) -> np.ndarray:
    """np.unique(values) of a 1-D array, without it: np.unique's first call imports
    numpy.ma (15 ms, a tenth of `rec recommend 42`'s rank stage)."""
    values = np.sort(values)
    return values[np.r_[True, values[1:] != values[:-1]]] if len(values) else values


def spread_columns(values: np.ndarray, columns: np.ndarray, n_columns: int) -> np.ndarray:
    """(rows, n_columns) with values' columns at `columns` (distinct, increasing) and zeros
    elsewhere: a gather of each row's columns, the others zeroed after (ml-1m's EASE items,
    3,691 of 3,883 movies: 7 ms for 1,024 users where out[:, columns] = values took 20)."""
    if len(columns) == n_columns:  # every column
        return values
    source = np.zeros(n_columns, np.intp)
    source[columns] = np.arange(len(columns))
    out = np.take(values, source, axis=1)
    elsewhere = np.ones(n_columns, bool)
    elsewhere[columns] = False
    out[:, elsewhere] = 0
    return out


@dataclass
class Ease:
    """EASE over `items` (movie indices): scores x_u B, 0 for movies outside `items`. B is
    ColumnBlocks when loaded for serving (rec.rank.easefile.load_item_models)."""

    items: np.ndarray
    b: np.ndarray | ColumnBlocks
    lam: float

    def scores(self, rows: np.ndarray, movies: np.ndarray, n_users: int,
               n_movies: int) -> np.ndarray:
        """(n_users, n_movies) scores of users whose rated movies are (rows, movies)."""
        scores = history_times(self.items, rows, movies, n_users, n_movies, self.b)
        return spread_columns(scores, self.items, n_movies)


@dataclass
class UserSideScores:
    """EASE λ's scores over `items` from rec.ease.UserSideEase, without its B: what
    item_model_metrics ranks each λ by when the users are few (user_side)."""

    items: np.ndarray
    side: UserSideEase
    lam: float

    def scores(self, rows: np.ndarray, movies: np.ndarray, n_users: int,
               n_movies: int) -> np.ndarray:
        x = binary_rows(self.items, rows, movies, n_users, n_movies)
        return spread_columns(self.side.scores(x, self.lam), self.items, n_movies)


def user_side(users: np.ndarray, movies: np.ndarray, items: np.ndarray,
              n_movies: int) -> UserSideEase | None:
    """rec.ease.UserSideEase of these ratings over `items` when their users are few
    (rec.ease.few_users), else None: the gram and a Cholesky inverse instead."""
    distinct = np.unique(users)
    if not few_users(len(distinct), len(items)):
        return None
    return UserSideEase(binary_rows(items, np.searchsorted(distinct, users),
                                    movies.astype(np.int64), len(distinct), n_movies))


@dataclass
class PureSvd:
    """PureSVD (Cremonesi 2010) over `items`: the binary matrix's top `rank` right singular
    vectors V (the gram matrix's top eigenvectors); scores x_u V V'."""

    items: np.ndarray
    v: np.ndarray  # (len(items), rank) float32

    def scores(self, rows: np.ndarray, movies: np.ndarray, n_users: int,
               n_movies: int, keys=None) -> np.ndarray:
        """`keys`: the users' rows, rec.lanes' (None: a plain product)."""
        return spread_columns(lane_product(history_times(self.items, rows, movies, n_users,
                                                         n_movies, self.v), self.v.T, keys),
                              self.items, n_movies)


def top_eigenvectors(g: np.ndarray, rank: int) -> np.ndarray:
    """The gram matrix's `rank` leading eigenvectors (float32, largest first)."""
    from scipy.linalg import eigh

    n = len(g)
    rank = min(rank, n)
    _, vecs = eigh(g, subset_by_index=[n - rank, n - 1], driver="evr", check_finite=False)
    return np.ascontiguousarray(vecs[:, ::-1], dtype=np.float32)


def item_factors(users: np.ndarray, movies: np.ndarray, items: np.ndarray, n_movies: int,
                 g: np.ndarray, rank: int) -> np.ndarray:
    """PureSVD's V: from the binary matrix X itself when it has fewer rows (users) than
    columns (ml-latest-small: 610 x 9k, a second instead of minutes), else the gram's
    leading eigenvectors (X'X = V S² V')."""
    distinct = np.unique(users)
    if len(distinct) >= len(items):
        return top_eigenvectors(g, rank)
    x = binary_rows(items, np.searchsorted(distinct, users), movies.astype(np.int64),
                    len(distinct), n_movies)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return np.ascontiguousarray(vt[:min(rank, len(vt))].T, dtype=np.float32)


def item_model_metrics(ds: Dataset, lambdas=LAMBDAS, ranks=(), max_users: int | None = None,
                       seed: int = 0) -> tuple[dict, dict]:
    """({λ: ranking_metrics}, {rank: ranking_metrics}) of EASE and PureSVD fitted on the
    dataset's TRAIN ratings, on its VAL ratings (relevant ones) with the known ratings as
    history, over a seeded sample of at most `max_users` users (None: all). On the tuning
    view it is what λ and the rank are chosen by; bench/bench_rank.py runs it on the
    evaluation split as a reference no stage may use."""
    tu, tm, _ = ds.part(TRAIN)
    items = ease_items(tm, ds.n_movies)
    side = user_side(tu, tm, items, ds.n_movies)
    g = gram(tu, tm, items, ds.n_movies) if side is None else None
    hu, hm, _ = ds.known()
    vu, vm, vr = ds.part(VAL)
    rel = vr >= RELEVANT
    ru, rm = vu[rel], vm[rel]
    if max_users is not None:
        users = np.sort(np.random.default_rng(seed).permutation(np.unique(ru))[:max_users])
        mine = np.isin(ru, users)
        ru, rm = ru[mine], rm[mine]

    def metrics(model) -> dict:
        return ranking_metrics(history_scorer(model, hu, hm, ds.n_movies), ds.n_users,
                               ds.n_movies, hu, hm, ru, rm)
    by_lambda = {lam: metrics(Ease(items, ease_from_gram(g, lam), lam) if side is None else
                              UserSideScores(items, side, lam)) for lam in lambdas}
    by_rank = {}
    if ranks:
        vecs = item_factors(tu, tm, items, ds.n_movies, g, max(ranks))
        by_rank = {r: metrics(PureSvd(items, vecs[:, :r])) for r in ranks if r <= vecs.shape[1]}
    return by_lambda, by_rank


def choose_settings(view: Dataset, lambdas=LAMBDAS, ranks=SVD_RANKS,
                    seed: int = 0) -> tuple[float, int, dict]:
    """EASE's λ and PureSVD's rank with the best NDCG@10 on the tuning view's VAL ratings
    (a seeded sample of at most TUNE_USERS of its users), and the tables for the record."""
    by_lambda, by_rank = item_model_metrics(view, lambdas, ranks, TUNE_USERS, seed)
    lam_table = {k: m["ndcg@10"] for k, m in by_lambda.items()}
    rank_table = {k: m["ndcg@10"] for k, m in by_rank.items()}
    lam = max(lam_table, key=lambda k: (lam_table[k], -k))
    rank = max(rank_table, key=lambda k: (rank_table[k], -k))
    return lam, rank, {"ease_lambda": {f"{k:g}": round(v, 6) for k, v in lam_table.items()},
                       "svd_rank": {str(k): round(v, 6) for k, v in rank_table.items()}}


def history_scorer(model, users: np.ndarray, movies: np.ndarray, n_movies: int):
    """ranking_metrics' score_chunk: an item model's (Ease, PureSvd) scores of a block of
    users from their history."""
    order = np.argsort(users, kind="stable")
    users, movies = users[order], movies[order]

    def score_chunk(block: np.ndarray) -> np.ndarray:
        lo, hi = np.searchsorted(users, block), np.searchsorted(users, block, side="right")
        rows = np.repeat(np.arange(len(block)), hi - lo)
        idx = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi)]) if len(block) else \
            np.zeros(0, np.int64)
        return model.scores(rows, movies[idx].astype(np.int64), len(block), n_movies)
    return score_chunk



def fit_item_models(ds: Dataset, lam: float, rank: int) -> tuple[Ease, PureSvd]:
    """EASE (λ) and PureSVD (rank) on the dataset's TRAIN ratings, from one gram matrix."""
    tu, tm, _ = ds.part(TRAIN)
    items = ease_items(tm, ds.n_movies)
    side = user_side(tu, tm, items, ds.n_movies)
    g = gram(tu, tm, items, ds.n_movies) if side is None else None
    svd = PureSvd(items, item_factors(tu, tm, items, ds.n_movies, g, rank))
    b = ease_from_gram(g, lam, overwrite=True) if side is None else side.weights(lam)
    return Ease(items, b, float(lam)), svd


def item_channels(ds: Dataset, run_id: str) -> tuple[dict[str, bytes], dict]:
    """({EASE_FILE: npz bytes carrying `run_id`}, the record of the choices): λ and the
    rank chosen on the tuning view of `ds`, then EASE and PureSVD fitted on all its
    training ratings."""
    from rec.datasets.tuning import describe, tuning_view

    lam, rank, tables = choose_settings(tuning_view(ds))
    ease, svd = fit_item_models(ds, lam, rank)
    from rec.rank.easefile import ease_file

    data = ease_file(ease.items, ease.b, lam, svd.v, run_id)  # run_id: rec.twotower.features
    return {EASE_FILE: data}, {
        "ease_lambda": lam, "svd_rank": rank, "tuning_ndcg@10": tables,
        "tuning": describe(ds)}


# --- candidates ----------------------------------------------------------------------------


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """(B, k) column indices of each row's k best (unordered); -inf entries may be among
    them when a row has fewer than k finite ones."""
    k = min(k, scores.shape[1])
    return smallest_k(scores, k, negated=True)
