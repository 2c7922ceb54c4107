"""Scoring of saved vectors: the model's matching function in numpy (no files, no paddle).

`scoring` is the description save-features writes to output/features/scoring.json:

    {"match": "dot" | "cosine", "scale": s, "offset": o, "clip": [lo, hi], "taste_dims": k}
    dot:    o + s * (u . m)
    cosine: o + s * cos(u, m)
"""

from __future__ import annotations

import numpy as np

MATCHES = ("dot", "cosine")


def _prepared(vectors: np.ndarray, scoring: dict) -> np.ndarray:
    """float32 vectors, unit length for the cosine match."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if scoring["match"] == "cosine":
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)
    return vectors


def score(users: np.ndarray, movies: np.ndarray, scoring: dict) -> np.ndarray:
    """Predicted ratings (len(users), len(movies)): exactly the model's matching function."""
    users, movies = _prepared(users, scoring), _prepared(movies, scoring)
    return np.float32(scoring.get("offset", 0.0)) + np.float32(scoring["scale"]) * (users @ movies.T)


def score_pairs(users: np.ndarray, movies: np.ndarray, scoring: dict) -> np.ndarray:
    """Predicted rating of each (users[i], movies[i]) pair: the diagonal of score()."""
    users, movies = _prepared(users, scoring), _prepared(movies, scoring)
    dots = np.einsum("ij,ij->i", users, movies)
    return np.float32(scoring.get("offset", 0.0)) + np.float32(scoring["scale"]) * dots


def vector_scorer(user_vecs: np.ndarray, movie_vecs: np.ndarray, scoring: dict):
    """`score_chunk` for rec.metrics.ranking_metrics from saved-style vectors: the scores
    `rec recommend` ranks by."""
    return lambda block: score(user_vecs[block], movie_vecs, scoring)
