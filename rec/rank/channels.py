"""Recall channels and their candidates (numpy only; 组合推荐's first stage).

Three channels each score every movie for a user from what the user rated (their history):

    two_tower   the trained two-tower's order (rec.scoring.score of the saved vectors)
    ease        EASE (Steck 2019), item-item in closed form on the binary training matrix:
                B = I - P / diag(P), P = (X'X + λI)^-1 by a float32 Cholesky inverse
                (LAPACK potrf + potri, through scipy); a user's scores are x_u B, so a new
                user needs no refit. λ is chosen on the tuning slice (choose_lambda)
    popularity  training counts: what people with few ratings get

Candidates (rec.rank.features.Stack.candidates) are the union of each channel's top K among the movies the user has not rated;
`candidate_recall` is the share of relevant movies that reach the ranker: the ceiling of
any ranked list over them.

A catalogue over EASE_MAX_MOVIES movies keeps EASE to the most-rated EASE_MAX_MOVIES (the
others score 0 there): B is EASE_MAX_MOVIES² float32 (1.6 GB at 20,000), the gram matrix as
much again while it is fitted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rec.datasets.contract import RELEVANT, TRAIN, VAL, Dataset
from rec.metrics import dense_chunk, ranking_metrics

CHANNELS = ("two_tower", "ease", "popularity")
LAMBDAS = (50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0)
EASE_MAX_MOVIES = 20_000
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


def gram(users: np.ndarray, movies: np.ndarray, items: np.ndarray, n_movies: int) -> np.ndarray:
    """X'X (float32) of the binary user x item matrix of these ratings, over `items`,
    built a block of users at a time (never the whole X)."""
    col = np.full(n_movies, -1, np.int64)
    col[items] = np.arange(len(items))
    keep = col[movies] >= 0
    users, cols = users[keep], col[movies[keep]]
    g = np.zeros((len(items), len(items)), np.float32)
    order = np.argsort(users, kind="stable")
    users, cols = users[order], cols[order]
    uniq, start = np.unique(users, return_index=True)
    block = dense_chunk(len(items), 2048)
    for s in range(0, len(uniq), block):
        lo = start[s]
        hi = start[s + block] if s + block < len(uniq) else len(users)
        x = np.zeros((min(block, len(uniq) - s), len(items)), np.float32)
        x[np.searchsorted(uniq[s: s + block], users[lo:hi]), cols[lo:hi]] = 1.0
        g += x.T @ x
    return g


def ease_from_gram(g: np.ndarray, lam: float, overwrite: bool = False) -> np.ndarray:
    """EASE's B (float32, zero diagonal) from the gram matrix, by a Cholesky inverse, in
    place of `g` with overwrite=True (one n² matrix at the peak, beside g's)."""
    from scipy.linalg import lapack

    a = g if overwrite else g.copy()
    a[np.diag_indices_from(a)] += np.float32(lam)
    c, info = lapack.spotrf(a, lower=False, overwrite_a=True)
    if info != 0:
        raise ValueError(f"EASE: the regularised gram matrix is not positive definite ({info})")
    p, info = lapack.spotri(c, lower=False, overwrite_c=True)
    if info != 0:
        raise ValueError(f"EASE: the Cholesky inverse failed ({info})")
    n = len(p)
    step = 1024
    for lo in range(0, n, step):  # potri fills the upper triangle only: mirror it, by blocks
        hi = min(lo + step, n)
        p[lo:hi, :lo] = p[:lo, lo:hi].T
        block = p[lo:hi, lo:hi]
        block[np.tril_indices(hi - lo, -1)] = block.T[np.tril_indices(hi - lo, -1)]
    scale = -1.0 / np.diag(p)
    p *= scale[None, :].astype(np.float32)
    p[np.diag_indices_from(p)] = 0.0
    return p.astype(np.float32, copy=False)


@dataclass
class Ease:
    """EASE over `items` (movie indices): scores x_u B, 0 for movies outside `items`."""

    items: np.ndarray
    b: np.ndarray
    lam: float

    def scores(self, rows: np.ndarray, movies: np.ndarray, n_users: int,
               n_movies: int) -> np.ndarray:
        """(n_users, n_movies) scores of users whose rated movies are (rows, movies)."""
        col = np.full(n_movies, -1, np.int64)
        col[self.items] = np.arange(len(self.items))
        keep = col[movies] >= 0
        x = np.zeros((n_users, len(self.items)), np.float32)
        x[rows[keep], col[movies[keep]]] = 1.0
        out = np.zeros((n_users, n_movies), np.float32)
        out[:, self.items] = x @ self.b
        return out


def fit_ease(ds: Dataset, lam: float) -> Ease:
    """EASE fitted on the dataset's TRAIN ratings."""
    tu, tm, _ = ds.part(TRAIN)
    items = ease_items(tm, ds.n_movies)
    return Ease(items, ease_from_gram(gram(tu, tm, items, ds.n_movies), lam, overwrite=True),
                float(lam))


def choose_lambda(view: Dataset, lambdas=LAMBDAS, seed: int = 0) -> tuple[float, dict]:
    """λ with the best NDCG@10 on the tuning view's VAL ratings (a seeded sample of at most
    TUNE_USERS of its users), and {λ: NDCG@10} for the record."""
    tu, tm, _ = view.part(TRAIN)
    items = ease_items(tm, view.n_movies)
    g = gram(tu, tm, items, view.n_movies)
    hu, hm, _ = view.known()
    vu, vm, vr = view.part(VAL)
    rel = vr >= RELEVANT
    users = np.unique(vu[rel])
    users = np.sort(np.random.default_rng(seed).permutation(users)[:TUNE_USERS])
    table = {}
    for lam in lambdas:
        ease = Ease(items, ease_from_gram(g, lam), lam)
        table[lam] = ranking_metrics(history_scorer(ease, hu, hm, view.n_movies), view.n_users,
                                     view.n_movies, hu, hm, vu[rel][np.isin(vu[rel], users)],
                                     vm[rel][np.isin(vu[rel], users)])["ndcg@10"]
    best = max(table, key=lambda lam: (table[lam], -lam))
    return best, {str(int(k) if float(k).is_integer() else k): round(v, 6)
                  for k, v in table.items()}


def history_scorer(ease: Ease, users: np.ndarray, movies: np.ndarray, n_movies: int):
    """ranking_metrics' score_chunk: EASE scores of a block of users from their history."""
    order = np.argsort(users, kind="stable")
    users, movies = users[order], movies[order]

    def score_chunk(block: np.ndarray) -> np.ndarray:
        lo, hi = np.searchsorted(users, block), np.searchsorted(users, block, side="right")
        rows = np.repeat(np.arange(len(block)), hi - lo)
        idx = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi)]) if len(block) else \
            np.zeros(0, np.int64)
        return ease.scores(rows, movies[idx].astype(np.int64), len(block), n_movies)
    return score_chunk


from rec.paths import EASE as EASE_FILE  # noqa: E402


def ease_channel(ds: Dataset) -> tuple[dict[str, bytes], dict]:
    """({EASE_FILE: npz bytes}, the record of the choice): λ chosen on the tuning view of
    `ds`, then EASE fitted on all of its training ratings with it."""
    import io

    from rec.datasets.tuning import describe, tuning_view

    lam, table = choose_lambda(tuning_view(ds))
    ease = fit_ease(ds, lam)
    buffer = io.BytesIO()
    np.savez(buffer, items=ease.items, b=ease.b, lam=np.float64(lam))
    return {EASE_FILE: buffer.getvalue()}, {
        "ease_lambda": lam, "ease_tuning_ndcg@10": table, "tuning": describe(ds)}


def load_ease(data: bytes, path) -> Ease:
    """The EASE channel from the bytes of features' EASE_FILE."""
    import io

    from rec.errors import RecError

    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return Ease(np.asarray(z["items"], np.int64), np.asarray(z["b"], np.float32),
                        float(z["lam"]))
    except (OSError, ValueError, KeyError) as e:
        raise RecError(f"{path} is damaged ({e}): run `rec save-features` again")


# --- candidates ----------------------------------------------------------------------------


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """(B, k) column indices of each row's k best (unordered); -inf entries may be among
    them when a row has fewer than k finite ones."""
    k = min(k, scores.shape[1])
    return np.argpartition(-scores, k - 1, axis=1)[:, :k]


def candidate_recall(cand: np.ndarray, relevant: np.ndarray) -> float:
    """Share of the relevant (user row, movie) pairs that are among the row's candidates:
    relevant is (B, M) bool."""
    total = int(relevant.sum())
    if not total:
        return float("nan")
    hit = np.take_along_axis(relevant, np.maximum(cand, 0), 1) & (cand >= 0)
    return float(hit.sum() / total)
