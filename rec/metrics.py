"""Rating and ranking metrics, and the baselines they are compared with (numpy only)."""

from __future__ import annotations

import numpy as np

from rec.features import score


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


def ranking_metrics(score_chunk, n_users: int, n_movies: int, seen_users: np.ndarray,
                    seen_movies: np.ndarray, relevant_users: np.ndarray,
                    relevant_movies: np.ndarray, k: int = 10, chunk: int = 1024) -> dict:
    """HR@k and NDCG@k, averaged over users with at least one relevant movie.

    For each such user every movie they did not rate in training is ranked by
    `score_chunk(user_indices) -> (len, n_movies) scores`; HR@k is 1 when any relevant movie
    is in the top k, NDCG@k uses binary relevance (ideal DCG over min(#relevant, k))."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    users_with_rel = np.unique(relevant_users)
    order = np.argsort(seen_users, kind="stable")
    su, sm = seen_users[order], seen_movies[order]
    rorder = np.argsort(relevant_users, kind="stable")
    ru, rm = relevant_users[rorder], relevant_movies[rorder]
    hits, ndcgs = [], []
    for start in range(0, len(users_with_rel), chunk):
        block = users_with_rel[start: start + chunk]
        scores = np.array(score_chunk(block), dtype=np.float64)
        row_of = np.full(n_users, -1)
        row_of[block] = np.arange(len(block))
        lo, hi = np.searchsorted(su, block[0]), np.searchsorted(su, block[-1], side="right")
        rows = row_of[su[lo:hi]]
        keep = rows >= 0
        scores[rows[keep], sm[lo:hi][keep]] = -np.inf  # seen in training: not a candidate
        kk = min(k, scores.shape[1])  # a catalogue smaller than k: rank all of it
        top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, 1), 1), 1)
        relevant = np.zeros_like(scores, dtype=bool)
        lo, hi = np.searchsorted(ru, block[0]), np.searchsorted(ru, block[-1], side="right")
        rows = row_of[ru[lo:hi]]
        keep = rows >= 0
        relevant[rows[keep], rm[lo:hi][keep]] = True
        gains = np.take_along_axis(relevant, top, 1)
        n_rel = np.minimum(relevant.sum(axis=1), k)
        ideal = np.cumsum(discounts)[n_rel - 1]
        hits.append(gains.any(axis=1))
        ndcgs.append((gains * discounts[:kk]).sum(axis=1) / ideal)
    if not hits:
        return {f"hr@{k}": float("nan"), f"ndcg@{k}": float("nan"), "ranked_users": 0}
    return {f"hr@{k}": float(np.concatenate(hits).mean()),
            f"ndcg@{k}": float(np.concatenate(ndcgs).mean()),
            "ranked_users": int(len(users_with_rel))}


def vector_scorer(user_vecs: np.ndarray, movie_vecs: np.ndarray, scoring: dict):
    """score_chunk for ranking_metrics from saved-style vectors: the recommend scores."""
    return lambda block: score(user_vecs[block], movie_vecs, scoring)
