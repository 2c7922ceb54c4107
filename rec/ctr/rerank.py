"""Recall then rank in numpy: the two-tower vectors recall, the MovieLens CTR model reorders.

`recall_rerank_metrics` is ctr-train's comparison (HR@10 / NDCG@10 before and after the
rerank); `CtrRanker` is `rec recommend --rerank`'s scorer. Neither imports paddle.
"""

from __future__ import annotations

import io

import numpy as np

from rec.ctr.fields import MovieLensFields
from rec.ctr.forward import NumpyCtr
from rec.datasets.contract import RELEVANT, VAL, is_dataset
from rec.errors import UsageError
from rec.metrics import ranking_metrics
from rec.paths import read_json, reading
from rec.scoring import rerank_order, vector_scorer
from rec.snapshot import read as read_snapshot


def recall_rerank_metrics(ds, features, net: NumpyCtr, fields: MovieLensFields,
                          candidates: int = 200, k: int = 10) -> dict | None:
    """HR@k / NDCG@k on the validation users (relevant = validation ratings of 4 or more,
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


class CtrRanker:
    """`rec recommend --rerank`'s scorer: the MovieLens CTR model (numpy), called with the
    recommend catalog's user rows and movie rows."""

    def __init__(self, net: NumpyCtr, fields: MovieLensFields, user_ds: np.ndarray,
                 movie_ds: np.ndarray):
        self.net, self.fields = net, fields
        self.user_ds, self.movie_ds = user_ds, movie_ds

    @classmethod
    def load(cls, paths, features, dataset) -> "CtrRanker":
        """The model of output/ctr/model (its config and weights from the same ctr-train
        run: rec.snapshot), for `features`' rows of `dataset` (the one the catalog read)."""
        return read_snapshot(paths.ctr.best,
                             lambda snapshot: cls._load(snapshot, paths, features, dataset))

    @classmethod
    def _load(cls, snapshot, paths, features, dataset) -> "CtrRanker":
        best = paths.ctr
        run = "rec ctr-train --data movielens"
        config = read_json(best.config, run, keys=("features", "model"), snapshot=snapshot)
        with reading(best.config, run):
            kind = config["features"].get("kind")
        if kind != "movielens":
            raise UsageError(f"{best.best} holds a CTR model for Criteo data, not MovieLens: "
                             "run `rec ctr-train --data movielens` first")
        if not snapshot.is_file(best.weights.name):
            raise UsageError(f"missing {best.weights}: run `{run}` first")
        if not is_dataset(config.get("data_fingerprint"), paths, dataset):
            raise UsageError("output/ctr was trained on another output/dataset: "
                             "run `rec ctr-train --data movielens` again")
        fields = MovieLensFields.from_dataset(dataset, config["features"].get("crosses", False))
        with reading(best.weights, run):
            with snapshot.open(best.weights.name) as f:
                net = NumpyCtr.load(io.BytesIO(f.read()), config["model"])
        vocab = dataset.vocab
        u_index = {str(u): i for i, u in enumerate(vocab.user_ids)}
        m_index = {str(m): i for i, m in enumerate(vocab.movie_ids)}
        user_ds = np.array([u_index.get(u, -1) for u in features.user_ids], dtype=np.int64)
        movie_ds = np.array([m_index.get(m, -1) for m in features.movie_ids], dtype=np.int64)
        return cls(net, fields, user_ds, movie_ds)

    def __call__(self, user_rows: np.ndarray, movies: np.ndarray) -> np.ndarray:
        """Click probabilities (B, C) of user_rows[b] for movies[b, c] (catalog rows; -1 or
        a user or movie the dataset does not know -> -inf)."""
        b, c = movies.shape
        u = np.repeat(self.user_ds[user_rows], c)
        m = np.where(movies.reshape(-1) >= 0, self.movie_ds[np.maximum(movies.reshape(-1), 0)], -1)
        ok = (u >= 0) & (m >= 0)
        out = np.full(b * c, -np.inf, dtype=np.float64)
        if ok.any():
            out[ok] = self.net.probabilities(**self.fields.inputs(u[ok], m[ok]))
        return out.reshape(b, c)
