"""Each user's best movies by the saved vectors' order (rec.scoring.score): numpy only.

best_columns partitions a block of full rows. best_scored gives the same columns and
scores, in the same order, without computing the whole order when it adds log P(like) to
the pick logits (the default model on ml-1m, like weight 1): that term is at most 0, so a
movie's order never passes its pick logit. A row's best `k` by the order are then among its
best L by pick, whenever the k-th best order found there is above every pick left out:
log P(like) (an exp and a log over the catalogue, a fifth of `rec recommend --all`'s CPU)
is computed for those L alone. A row where that does not hold, or where a tie could let
the partition decide (which equal score comes first, or is left out), is scored whole, as
before. The pick logits and the stars are the same products as score()'s, and each order
value the same element-wise sum, so every column and score is score()'s to the bit.

like_weight_shortlists gives training's validation the same shortcut: each like weight's
order of a block of users as a rec.shortlists.Shortlist of the best L by pick.
"""

from __future__ import annotations

import numpy as np

from rec.metrics import PairsByUser, block_rows
from rec.scoring import like_weight, log_like, pick_logits, score, star_product
from rec.shortlists import Shortlist

PARTITION_ROWS = 64  # rows per np.argpartition in best_columns
SHORTLIST = 4  # best_scored looks at SHORTLIST * k columns by pick (at least 64)


def largest_k(scores: np.ndarray, k: int) -> np.ndarray:
    """np.argpartition(scores, n - k, axis=1)[:, n - k:] (n: the columns): each row's k
    largest, the (n - k)-th first, the rest unordered. A few rows at a time (faster than
    partitioning -scores): each row is partitioned on its own, so the indices are the same,
    and numpy's (rows, n) int64 index array is made in the cache, not as 32 MB of fresh
    pages for each chunk of 1,024 ml-1m users."""
    n = scores.shape[1]
    part = np.empty((len(scores), k), np.intp)
    for lo in range(0, len(scores), PARTITION_ROWS):
        part[lo:lo + PARTITION_ROWS] = np.argpartition(scores[lo:lo + PARTITION_ROWS], n - k,
                                                       axis=1)[:, n - k:]
    return part


def best_columns(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best columns of each row, best first, with their scores (-inf = not available)."""
    part = largest_k(scores, min(k, scores.shape[1]))
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(part_scores, order, axis=1)


def best_scored(users: np.ndarray, movies: np.ndarray, scoring: dict, blocked, k: int,
                keys=None):
    """best_columns(score(users, movies, scoring, keys) with `blocked(scores)` setting
    -inf where a movie may not be recommended, k): (columns, scores), the same to the bit."""
    n = len(movies)
    short = max(SHORTLIST * k, 64)
    if not like_weight(scoring) or short + 1 >= n:
        scores = score(users, movies, scoring, keys)
        blocked(scores)
        return best_columns(scores, k)
    pick = pick_logits(users, movies, scoring, keys)  # score()'s products, in its order
    star_values = star_product(users, movies, scoring, keys)  # stars() where read alone
    like = scoring["like"]
    weight = np.float32(like["weight"])
    blocked(pick)  # -inf where the order is -inf
    # each row's best short + 1 picks; the first of them is the best pick left out
    part = largest_k(pick, short + 1)
    left_out = np.take_along_axis(pick, part[:, :1], 1)[:, 0]
    listed = part[:, 1:]
    order = np.take_along_axis(pick, listed, 1)
    order += weight * log_like(star_values.stars_at(listed), like)
    best, values = best_columns(order, k + 1)
    cols, vals = np.take_along_axis(listed, best[:, :k], 1), values[:, :k]
    sure = np.isfinite(vals[:, -1]) & (vals[:, -1] > left_out) & (values[:, k] < vals[:, -1])
    if k > 1:
        sure &= (vals[:, 1:] < vals[:, :-1]).all(axis=1)
    unsure = np.flatnonzero(~sure)
    if len(unsure):  # scored whole: the same element-wise order as score()'s
        whole = pick[unsure]
        whole += weight * log_like(star_values.stars(unsure), like)
        cols[unsure], vals[unsure] = best_columns(whole, k)
    return cols, vals


def like_weight_shortlists(user_vecs: np.ndarray, movie_vecs: np.ndarray, scoring: dict,
                           weights, seen_users: np.ndarray, seen_movies: np.ndarray,
                           k: int = 10):
    """rec.metrics.ranking_metrics' score_chunk of the order pick + w log P(like) for each
    like weight w >= 0 of `weights` ({w: Shortlist}), for users `user_vecs` whose seen
    movies are the pairs (seen_users, seen_movies); `k`: the metrics' cut.

    One pick and one stars product per block. As in best_scored, no movie's order passes
    its pick logit, so each row's best L by pick (seen movies left out), with the best pick
    left out as the ceiling of the rest, are its shortlist at every weight, and log P(like)
    is computed for those alone; ranking_metrics ranks a row whole (`dense`) where that
    could differ. The same metrics as the full orders: training's validation ranks five
    weights over 1,500 ml-1m users in a third of the time."""
    seen = PairsByUser(seen_users, seen_movies)
    like = scoring["like"]
    short = max(SHORTLIST * k, 64)

    def score_chunk(block: np.ndarray) -> dict:
        users = user_vecs[block]
        pick = pick_logits(users, movie_vecs, scoring)
        star_values = star_product(users, movie_vecs, scoring)  # stars() where read alone
        # seen: never ranked, at any weight
        pick[seen.in_block(block, block_rows(block, len(user_vecs)))] = -np.inf

        def full(w: float, rows=slice(None)) -> np.ndarray:  # score()'s order, seen -inf
            return pick[rows] + np.float32(w) * log_like(star_values.stars(rows), like) if w \
                else pick[rows]
        if short + 1 >= pick.shape[1]:
            return {w: full(w) for w in weights}
        part = largest_k(pick, short + 1)
        ceiling = np.take_along_axis(pick, part[:, :1], 1)[:, 0]  # the best pick left out
        listed = part[:, 1:]
        listed_pick = np.take_along_axis(pick, listed, 1)
        listed_like = log_like(star_values.stars_at(listed), like)
        return {w: Shortlist(listed, listed_pick + np.float32(w) * listed_like if w else
                             listed_pick, ceiling, lambda rows, w=w: full(w, rows))
                for w in weights}
    return score_chunk
