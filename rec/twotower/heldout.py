"""Evaluation on held-out users (`rec preprocess --split users`): numpy only.

The model never saw these users. Each one's vector is folded in from their given ratings
(rec.twotower.foldin.user_vector on the trained network's fold_in_parts(): exactly what
`rec recommend --rated` computes), scored with rec.scoring.score (the order recommend ranks
by), and every movie but the given ones is ranked. HR@10 / NDCG@10 over the to-predict
ratings of RELEVANT stars or more, RMSE / MAE of the predicted stars on all of them.

Baselines on exactly the same users, given ratings and candidates: popularity (training
counts) and EASE, fitted on the training users' binary matrix and applied to the held-out
users as X_given B (EASE serves new users without refitting); and, for the stars, the
user + movie bias model with the user's bias folded in from the given ratings.
"""

from __future__ import annotations

import numpy as np

from rec.datasets.contract import GIVEN, RELEVANT, Dataset
from rec.errors import UsageError
from rec.ease import ease_weights
from rec.metrics import (EASE_MAX_MOVIES, fit_biases, popularity_scorer,
                         ranking_metrics, rmse_mae)
from rec.scoring import stars_pairs, vector_scorer
from rec.twotower.foldin import user_vector

BIAS_REG = 5.0  # as rec.metrics.fit_biases


def vector_metrics(user_vecs: np.ndarray, movie_vecs: np.ndarray, scoring: dict,
                   users: np.ndarray, movies: np.ndarray, ratings: np.ndarray, clip,
                   ranking: dict | None = None, **rank_args) -> dict:
    """ranking_metrics of the order rec.scoring.score gives saved-style vectors (rows of
    user_vecs are ranking_metrics' users), with RMSE and MAE of their predicted stars on
    the (users, movies, ratings) rows. `ranking`: those ranking_metrics when already
    computed (the two-tower channel of rec.rank.serving.report, the same order)."""
    rmse, mae = rmse_mae(stars_pairs(user_vecs[users], movie_vecs[movies], scoring), ratings, clip)
    if ranking is None:
        ranking = ranking_metrics(vector_scorer(user_vecs, movie_vecs, scoring), **rank_args)
    return {**ranking, "rmse": rmse, "mae": mae}


def given_ratings(ds: Dataset, users: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(movies, ratings) given for each of `users` (sorted user indices)."""
    gu, gm, gr = ds.part(GIVEN)
    order = np.argsort(gu, kind="stable")
    gu, gm, gr = gu[order], gm[order], gr[order]
    lo, hi = np.searchsorted(gu, users), np.searchsorted(gu, users, side="right")
    return [(gm[a:b], gr[a:b]) for a, b in zip(lo, hi)]


def fold_in_vectors(parts: dict, ds: Dataset, users: np.ndarray,
                    global_mean: float) -> np.ndarray:
    """The saved-layout vectors of `users` folded in from their given ratings and their
    demographics."""
    demo = np.asarray(ds.users)[users, 1:4]
    return np.stack([user_vector(parts, movies, ratings, global_mean, *map(int, d))
                     for (movies, ratings), d in zip(given_ratings(ds, users), demo)])


def evaluate_held_out(ds: Dataset, parts: dict, movie_vecs: np.ndarray, scoring: dict,
                      global_mean: float, clip, k: int = 10) -> tuple[dict, np.ndarray]:
    """(report, the held-out users' folded-in vectors). The report holds the model's metrics,
    `baselines`, `notes` and the counts of users and ratings."""
    held = ds.held_out_users()
    if not len(held):
        raise UsageError("output/dataset holds out no user: run `rec preprocess --split users`")
    pos = np.full(ds.n_users, -1)
    pos[held] = np.arange(len(held))
    (tu, tm, tr), (vu, vm, vr) = ds.train_val()
    gu, gm, gr = ds.part(GIVEN)
    vu = pos[vu]
    if (vu < 0).any():
        raise UsageError("output/dataset has validation ratings of users it does not hold "
                         "out: run `rec preprocess --split users` again")
    rel = vr >= RELEVANT
    args = dict(n_users=len(held), n_movies=ds.n_movies, seen_users=pos[gu], seen_movies=gm,
                relevant_users=vu[rel], relevant_movies=vm[rel], k=k,
                movie_counts=np.bincount(tm, minlength=ds.n_movies))

    vecs = fold_in_vectors(parts, ds, held, global_mean)
    result = vector_metrics(vecs, movie_vecs, scoring, vu, vm, vr, clip, **args)

    baselines = {"popularity": ranking_metrics(popularity_scorer(ds.n_movies, tm), **args)}
    notes = []
    if ds.n_movies <= EASE_MAX_MOVIES:
        x = np.zeros((ds.n_users, ds.n_movies), np.float32)
        x[tu, tm] = 1.0  # training users only: a held-out user's row stays empty
        b = ease_weights(x)
        del x
        x_given = np.zeros((len(held), ds.n_movies), np.float32)
        x_given[pos[gu], gm] = 1.0
        baselines["ease"] = ranking_metrics(lambda block: x_given[block] @ b, **args)
    else:
        notes.append(f"EASE skipped: {ds.n_movies:,} movies (more than {EASE_MAX_MOVIES:,})")
    mu, _, b_m = fit_biases(tu, tm, tr, ds.n_users, ds.n_movies)
    b_u = np.bincount(pos[gu], gr - mu - b_m[gm], len(held)) / \
        (np.bincount(pos[gu], minlength=len(held)) + BIAS_REG)
    b_rmse, b_mae = rmse_mae(mu + b_u[vu] + b_m[vm], vr, clip)
    baselines["bias"] = {**ranking_metrics(lambda block: mu + b_u[block][:, None] + b_m[None, :],
                                           **args), "rmse": b_rmse, "mae": b_mae}
    report = {**result, "baselines": baselines, "notes": notes,
              "held_out_users": int(len(held)), "given_ratings": int(len(gu)),
              "validation_ratings": int(len(vr))}
    return report, vecs
