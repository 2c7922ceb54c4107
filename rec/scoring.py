"""Scoring of saved vectors: the model's functions in numpy (no files, no paddle).

`scoring` is the description save-features writes to output/features/scoring.json:

    {"match": "dot" | "cosine", "scale": s, "offset": o, "clip": [lo, hi], "taste_dims": k}
        stars = order = o + s * (u . m)      (dot)
                        o + s * cos(u, m)    (cosine)

    {"match": "softmax", "split": p, "offset": o, "clip": [lo, hi], "taste_dims": k,
     "like": {"a": a, "b": b, "weight": w}}
        pick  = u[:p] . m[:p]                the logit of a softmax over the catalogue
        stars = o + u[p:] . m[p:]            the rating head
        order = pick + w * log sigmoid(a * stars + b)
              = log P(pick | user) + w * log P(like | user, movie) + a constant per user

`stars` is what people are shown (clipped to `clip`), `order` what recommendations are
ranked by; for the pure rating models they are the same.
"""

from __future__ import annotations

import numpy as np

from rec.lanes import lane_product


def _prepared(vectors: np.ndarray, scoring: dict) -> np.ndarray:
    """float32 vectors, unit length for the cosine match."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if scoring["match"] == "cosine":
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)
    return vectors


def _rating_operands(users: np.ndarray, movies: np.ndarray, scoring: dict):
    """(user part, movie part, offset, scale) with stars = offset + scale * (u . m): the
    rating head's components for the softmax match, the whole vectors otherwise."""
    users, movies = _prepared(users, scoring), _prepared(movies, scoring)
    offset = np.float32(scoring.get("offset", 0.0))
    if scoring["match"] == "softmax":
        p = int(scoring["split"])
        return users[:, p:], movies[:, p:], offset, np.float32(1.0)
    return users, movies, offset, np.float32(scoring["scale"])


def stars(users: np.ndarray, movies: np.ndarray, scoring: dict, keys=None) -> np.ndarray:
    """Predicted ratings (len(users), len(movies)), unclipped. `keys`: the users' rows
    (rec.lanes: each row's bits then its own, whoever else is in the product)."""
    return star_product(users, movies, scoring, keys).stars()


class StarProduct:
    """stars() as its product u . m and the element-wise offset + scale * it, done only
    where asked: each value is stars()'s to the bit (the same product, the same two
    float32 operations on each element). Whoever needs the stars of a few columns of each
    row (a shortlist) skips two passes over (users x catalogue)."""

    def __init__(self, product: np.ndarray, offset: np.float32, scale: np.float32):
        self.product, self.offset, self.scale = product, offset, scale

    def stars(self, rows=slice(None)) -> np.ndarray:
        """stars() of these rows (all of them by default)."""
        return self.offset + self.scale * self.product[rows]

    def stars_at(self, columns: np.ndarray) -> np.ndarray:
        """stars() at each row's `columns` (B, L): take_along_axis of it."""
        return self.offset + self.scale * np.take_along_axis(self.product, columns, 1)


def star_product(users: np.ndarray, movies: np.ndarray, scoring: dict,
                 keys=None) -> StarProduct:
    """stars() of (users x movies), its element-wise part left to be done where asked."""
    u, m, offset, scale = _rating_operands(users, movies, scoring)
    return StarProduct(lane_product(u, m.T, keys), offset, scale)


def stars_pairs(users: np.ndarray, movies: np.ndarray, scoring: dict) -> np.ndarray:
    """Predicted rating of each (users[i], movies[i]) pair: the diagonal of stars()."""
    u, m, offset, scale = _rating_operands(users, movies, scoring)
    return offset + scale * np.einsum("ij,ij->i", u, m)


def pick_logits(users: np.ndarray, movies: np.ndarray, scoring: dict,
                keys=None) -> np.ndarray:
    """The softmax match's recall logits (len(users), len(movies))."""
    p = int(scoring["split"])
    return lane_product(np.asarray(users, np.float32)[:, :p],
                        np.asarray(movies, np.float32)[:, :p].T, keys)


def log_like(star_values: np.ndarray, like: dict) -> np.ndarray:
    """log P(like) = log sigmoid(a * stars + b), computed without overflow."""
    star_values = np.asarray(star_values, np.float32)
    z = np.empty(star_values.shape, np.float32)  # written with out=: arrays, even 0-d
    np.multiply(star_values, np.float32(like["a"]), out=z)
    z += np.float32(like["b"])
    # log sigmoid(z) = min(z, 0) - log(1 + exp(-|z|)): stable, in place. log(1 + t) for t
    # in (0, 1], not log1p(t): numpy's float32 log is vectorised and its log1p is not (a
    # 1,024-user chunk of ml-1m: 28 ms against 60, a quarter of `recommend --all`'s CPU);
    # 1 + t drops t's bits below 2^-24, an absolute error under 6e-8 where |z| > 16
    t = np.empty_like(z)
    np.abs(z, out=t)
    np.negative(t, out=t)
    np.exp(t, out=t)
    t += np.float32(1)
    np.log(t, out=t)
    np.minimum(z, np.float32(0), out=z)
    z -= t
    return z


def like_weight(scoring: dict) -> float:
    """The weight of log P(like) in score()'s order: 0 when the order is the pick logits
    (or the stars) alone."""
    if scoring["match"] != "softmax":
        return 0.0
    return float((scoring.get("like") or {}).get("weight") or 0.0)


def score(users: np.ndarray, movies: np.ndarray, scoring: dict, keys=None) -> np.ndarray:
    """The order `rec recommend` ranks by (len(users), len(movies)); see the docstring."""
    if scoring["match"] != "softmax":
        return stars(users, movies, scoring, keys)
    order = pick_logits(users, movies, scoring, keys)
    like = scoring.get("like")
    if like and like.get("weight"):
        order += np.float32(like["weight"]) * log_like(stars(users, movies, scoring, keys),
                                                       like)
    return order


def head_scores(users: np.ndarray, movies: np.ndarray, scoring: dict, keys=None) -> tuple:
    """(stars, pick, order), each (len(users), len(movies)), the stars computed once: the
    rating head (unclipped), the recall logits (the stars for the pure rating models) and
    score()'s order, a new array."""
    star_values = np.asarray(stars(users, movies, scoring, keys), np.float32)  # a new array
    if scoring["match"] != "softmax":
        return star_values, star_values, star_values.copy()
    pick = pick_logits(users, movies, scoring, keys)
    like = scoring.get("like") or {}
    # weight 0 (the tuning slice's choice on ml-1m): pick + 0 * log P(like) is pick to the
    # bit (log P(like) is finite and <= 0), without a pass of exp and log over the catalogue
    order = pick + np.float32(like["weight"]) * log_like(star_values, like) \
        if like.get("weight") else pick.copy()
    return star_values, pick, order


# The weight of log P(watch and like) from the CTR model in --rerank's order. Measured on
# ml-1m (random 90/10, seed 7, CTR model trained with --negatives 3), HR@10 / NDCG@10 of
# the recall top 200 reordered by pick + w * log P: w 0.25 0.7553 / 0.2764, 0.5 0.7578 /
# 0.2796, 1 0.7572 / 0.2802, 2 0.7473 / 0.2768 (recall alone: 0.7543 / 0.2736).
RERANK_WEIGHT = 0.5


def rerank_order(users: np.ndarray, candidates: np.ndarray, probs: np.ndarray,
                 scoring: dict) -> np.ndarray:
    """The order of recall candidates when the CTR model of --rerank says how likely the
    user is to watch and like each: users (B, D), candidates (B, C, D) their movies'
    vectors, probs (B, C). For the softmax match: pick + RERANK_WEIGHT * log probs (the
    CTR model takes the rating head's place); for the pure rating models the probability
    alone."""
    if scoring["match"] != "softmax":
        return np.asarray(probs, np.float32)
    p = int(scoring["split"])
    pick = np.einsum("bd,bcd->bc", np.asarray(users, np.float32)[:, :p],
                     np.asarray(candidates, np.float32)[:, :, :p])
    return pick + np.float32(RERANK_WEIGHT) * np.log(np.clip(probs, 1e-7, 1.0)).astype(np.float32)


def like_calibration(star_values: np.ndarray, liked: np.ndarray,
                     iterations: int = 25) -> tuple[float, float]:
    """(a, b) of P(like) = sigmoid(a * stars + b), fitted by Newton's method (logistic
    regression of `liked` on the predicted stars, a small ridge keeps it finite)."""
    x = np.stack([np.asarray(star_values, np.float64), np.ones(len(star_values))], axis=1)
    y = np.asarray(liked, np.float64)
    w = np.zeros(2)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -30, 30)))
        grad = x.T @ (p - y) + 1e-3 * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + 1e-3 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return float(w[0]), float(w[1])


def vector_scorer(user_vecs: np.ndarray, movie_vecs: np.ndarray, scoring: dict):
    """`score_chunk` for rec.metrics.ranking_metrics from saved-style vectors: the scores
    `rec recommend` ranks by (each user's row keyed by its index: rec.lanes)."""
    return lambda block: score(user_vecs[block], movie_vecs, scoring, block)
