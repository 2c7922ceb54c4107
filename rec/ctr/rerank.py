"""The course's CTR view of recall then rank, in numpy: the two-tower vectors recall, a
MovieLens Wide&Deep / DeepFM (`ctr-train --data movielens --model wide_deep`) reorders.

`recall_rerank_metrics` is that run's comparison (HR@10 / NDCG@10 before and after the
rerank). The rank stage `rec recommend` serves is rec.rank (`--model rank`, the default).
"""

from __future__ import annotations

import numpy as np

from rec.ctr.fields import MovieLensFields
from rec.ctr.forward import NumpyCtr
from rec.datasets.contract import RELEVANT, VAL
from rec.metrics import ranking_metrics
from rec.scoring import rerank_order, vector_scorer


def recall_rerank_metrics(ds, features, net: NumpyCtr, fields: MovieLensFields,
                          candidates: int = 200, k: int = 10) -> dict | None:
    """HR@k / NDCG@k on `ds`'s validation users (ctr-train passes the dataset itself: the
    evaluation split; relevant = validation ratings of 4 or more,
    movies rated in training excluded, as `rec evaluate` does) for the two-tower model's
    ranking alone ("recall") and for its top `candidates` reordered with the click
    probability in place of the rating head (rec.scoring.rerank_order: "rerank"). None when the saved vectors do not cover the dataset's users and movies."""
    vocab = ds.vocab
    urow, mrow = features.user_row(), features.movie_row()
    u_feat = np.array([urow.get(str(i), -1) for i in vocab.user_ids], dtype=np.int64)
    m_feat = np.array([mrow.get(str(i), -1) for i in vocab.movie_ids], dtype=np.int64)
    if (u_feat < 0).any() or (m_feat < 0).any():
        return None
    user_vecs, movie_vecs = features.users[u_feat], features.movies[m_feat]
    tu, tm, _ = ds.known()  # training ratings (and a held-out user's given ones)
    vu, vm, vr = ds.part(VAL)
    rel = vr >= RELEVANT
    n_users, n_movies = ds.n_users, ds.n_movies

    recall = vector_scorer(user_vecs, movie_vecs, features.scoring)

    def rerank(block):
        s = recall(block)
        pos = np.full(n_users, -1)
        pos[block] = np.arange(len(block))
        sel = pos[tu] >= 0
        s[pos[tu[sel]], tm[sel]] = -np.inf  # seen in training: not a candidate
        c = min(candidates, n_movies)
        cand = np.argpartition(-s, c - 1, axis=1)[:, :c]
        ok = np.isfinite(np.take_along_axis(s, cand, 1))
        probs = net.probabilities(**fields.inputs(np.repeat(block, c), cand.reshape(-1)))
        order = rerank_order(user_vecs[block], movie_vecs[cand], probs.reshape(len(block), c),
                             features.scoring)
        out = np.full(s.shape, -np.inf)
        rows = np.repeat(np.arange(len(block)), c).reshape(len(block), c)
        out[rows[ok], cand[ok]] = order[ok]
        return out

    args = dict(n_users=n_users, n_movies=n_movies, seen_users=tu, seen_movies=tm,
                relevant_users=vu[rel], relevant_movies=vm[rel], k=k)
    before, after = ranking_metrics(recall, **args), ranking_metrics(rerank, **args)
    return {f"recall_hr@{k}": round(before[f"hr@{k}"], 6),
            f"rerank_hr@{k}": round(after[f"hr@{k}"], 6),
            f"recall_ndcg@{k}": round(before[f"ndcg@{k}"], 6),
            f"rerank_ndcg@{k}": round(after[f"ndcg@{k}"], 6),
            "rerank_candidates": int(min(candidates, n_movies)),
            "ranked_users": before["ranked_users"]}
