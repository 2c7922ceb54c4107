"""CTR in numpy only: metrics, the MovieLens-as-CTR features, and the models' forward pass.

`rec recommend --rerank` must not import paddle, so `rec ctr-train --data movielens` exports
the trained network's weights to output/ctr/model/weights.npz and this module computes the
same click probabilities from them (checked against paddle to 1e-5 by the tests).
"""

from __future__ import annotations

import numpy as np

from rec.errors import UsageError

# output/ctr/model/: the best model, swapped in whole by `rec ctr-train`
MODEL_DIR, CONFIG_FILE, PARAMS_FILE = "model", "config.json", "model.pdparams"
WEIGHTS_FILE, VOCAB_FILE = "weights.npz", "vocab.npz"


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


def sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return (1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))).astype(np.float32)


# --- MovieLens as CTR -----------------------------------------------------------------------

LIKED = 4.0  # label 1 when the rating is at least this
YEAR_START, YEAR_STEP, YEAR_BUCKETS = 1920, 5, 20  # bucket 0 = unknown year, 1 = before 1920
ML_FIELDS = ["user", "gender", "age", "occupation", "movie", "year", "genres"]


def year_buckets(years) -> np.ndarray:
    """5-year buckets of release years: 0 unknown, 1 before 1920, ... 19 from 2005 on."""
    y = np.array([-1 if v is None else v for v in years], dtype=np.int64)
    b = 2 + (y - YEAR_START) // YEAR_STEP
    return np.where(y < 0, 0, np.clip(b, 1, YEAR_BUCKETS - 1))


class MovieLensFields:
    """MovieLens (user, movie) pairs as CTR inputs, from the preprocessed dataset's arrays.

    Fields: user id, gender, age bucket, occupation, movie id, release-year bucket (5 years)
    and genres (one pooled field: the mean of the movie's genre embeddings). They share one
    id space, each field at its offset. With `crosses`, every (user, genre) pair also gets a
    wide-only weight: the Wide&Deep paper's cross-product transformation."""

    def __init__(self, users: np.ndarray, movie_genres: np.ndarray, years, n_genders: int,
                 n_ages: int, n_occupations: int, n_genres: int, crosses: bool = False):
        users = np.asarray(users, dtype=np.int64)
        genres = np.asarray(movie_genres, dtype=np.int64)
        self.n_users, self.n_movies = len(users), len(genres)
        self.n_genres = n_genres
        sizes = [self.n_users, n_genders, n_ages, n_occupations, self.n_movies, YEAR_BUCKETS,
                 n_genres]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.n_ids = int(sum(sizes))
        off = self.offsets
        self.user_slots = np.stack([off[0] + users[:, 0], off[1] + users[:, 1],
                                    off[2] + users[:, 2], off[3] + users[:, 3]], axis=1)
        count = np.maximum((genres > 0).sum(axis=1, keepdims=True), 1)
        genre_w = ((genres > 0) / count).astype(np.float32)
        self.movie_genres = genres
        self.movie_genre_weights = genre_w
        self.movie_slots = np.concatenate(
            [(off[4] + np.arange(self.n_movies))[:, None],
             (off[5] + year_buckets(years))[:, None], off[6] + genres], axis=1)
        self.movie_weights = np.concatenate(
            [np.ones((self.n_movies, 2), np.float32), genre_w], axis=1)
        self.slot_fields = [0, 1, 2, 3, 4, 5] + [6] * genres.shape[1]
        self.crosses = crosses
        self.n_cross = self.n_users * n_genres if crosses else 0

    @classmethod
    def from_dataset(cls, ds, crosses: bool = False) -> "MovieLensFields":
        v = ds.vocab
        return cls(ds.users, ds.movie_genres, v.years, len(v.genders), len(v.ages),
                   len(v.occupations), len(v.genres), crosses)

    def inputs(self, users: np.ndarray, movies: np.ndarray) -> dict:
        """Model inputs for (user index, movie index) pairs of the dataset."""
        users = np.asarray(users, dtype=np.int64)
        movies = np.asarray(movies, dtype=np.int64)
        out = {"ids": np.concatenate([self.user_slots[users], self.movie_slots[movies]], axis=1),
               "weights": np.concatenate([np.ones((len(users), 4), np.float32),
                                          self.movie_weights[movies]], axis=1)}
        if self.crosses:
            out["cross"] = users[:, None] * self.n_genres + self.movie_genres[movies]
            out["cross_weights"] = self.movie_genre_weights[movies]
        return out

    def describe(self) -> dict:
        return {"kind": "movielens", "fields": ML_FIELDS, "liked": LIKED,
                "crosses": self.crosses, "n_users": self.n_users, "n_movies": self.n_movies,
                "year_buckets": [YEAR_START, YEAR_STEP, YEAR_BUCKETS]}


# --- the forward pass -----------------------------------------------------------------------


class NumpyCtr:
    """The CTR networks of rec/models/ctr.py, forward only, from their exported weights
    (the paddle state_dict's names and shapes: a Linear's weight is (in, out))."""

    def __init__(self, config: dict, params: dict):
        self.c = config
        self.p = {k: np.asarray(v, dtype=np.float32) for k, v in params.items()}
        slots = list(config["slot_fields"])
        self.pool = None
        if slots != list(range(len(slots))):
            pool = np.zeros((max(slots) + 1, len(slots)), np.float32)
            pool[np.asarray(slots), np.arange(len(slots))] = 1.0
            self.pool = pool

    @classmethod
    def load(cls, npz_path, config: dict) -> "NumpyCtr":
        with np.load(npz_path, allow_pickle=False) as z:
            return cls(config, {k: z[k] for k in z.files})

    def _first_order(self, prefix, ids, weights, dense, cross, cross_weights):
        p = self.p
        w = p[prefix + "id_weight.weight"][ids, 0]
        if weights is not None:
            w = w * weights
        out = w.sum(axis=1) + p[prefix + "bias"][0]
        if dense is not None and prefix + "dense_weight" in p:
            out = out + (dense @ p[prefix + "dense_weight"])[:, 0]
        if cross is not None and prefix + "cross_weight.weight" in p:
            x = p[prefix + "cross_weight.weight"][cross, 0]
            if cross_weights is not None:
                x = x * cross_weights
            out = out + x.sum(axis=1)
        return out

    def _fields(self, ids, weights):
        e = self.p["fields.emb.weight"][ids]  # (B, S, k)
        if weights is not None:
            e = e * weights[..., None]
        if self.pool is not None:
            e = np.einsum("fs,bsk->bfk", self.pool, e)
        return e

    def _mlp(self, v, dense):
        p = self.p
        h = v.reshape(len(v), -1) @ p["deep.first.weight"] + p["deep.first.bias"]
        if dense is not None and "deep.first_dense.weight" in p:
            h = h + dense @ p["deep.first_dense.weight"]
        h = np.maximum(h, 0)
        i = 0
        while f"deep.hidden.{i}.weight" in p:
            h = np.maximum(h @ p[f"deep.hidden.{i}.weight"] + p[f"deep.hidden.{i}.bias"], 0)
            i += 1
        return (h @ p["deep.out.weight"] + p["deep.out.bias"])[:, 0]

    def logits(self, ids, weights=None, dense=None, cross=None, cross_weights=None) -> np.ndarray:
        model = self.c["model"]
        if dense is not None and dense.shape[1] == 0:
            dense = None
        if model == "lr":
            return self._first_order("linear.", ids, weights, dense, cross, cross_weights)
        if model == "wide_deep":
            v = self._fields(ids, weights)
            return (self._first_order("wide.", ids, weights, dense, cross, cross_weights)
                    + self._mlp(v, dense))
        if model == "deepfm":
            v = self._fields(ids, weights)
            total, squares = v.sum(axis=1), (v * v).sum(axis=1)
            if dense is not None and "dense_emb" in self.p:
                dv = dense[..., None] * self.p["dense_emb"]
                total, squares = total + dv.sum(axis=1), squares + (dv * dv).sum(axis=1)
            fm = 0.5 * (total * total - squares).sum(axis=1)
            return (self._first_order("linear.", ids, weights, dense, cross, cross_weights)
                    + fm + self._mlp(v, dense))
        raise ValueError(f"unknown CTR model {model!r}")

    def probabilities(self, batch: int = 65536, **inputs) -> np.ndarray:
        n = len(inputs["ids"])
        out = [sigmoid(self.logits(**{k: v[i: i + batch] for k, v in inputs.items()}))
               for i in range(0, n, batch)]
        return np.concatenate(out) if out else np.zeros(0, np.float32)


# --- recall then rank -----------------------------------------------------------------------


def recall_rerank_metrics(ds, features, net: NumpyCtr, fields: MovieLensFields,
                          candidates: int = 200, k: int = 10) -> dict | None:
    """HR@k / NDCG@k on the validation users (relevant = validation ratings of 4 or more,
    movies rated in training excluded, as `rec evaluate` does) for the two-tower model's
    ranking alone ("recall") and for its top `candidates` reordered by click probability
    ("rerank"). None when the saved vectors do not cover the dataset's users and movies."""
    from rec.datasets.contract import TRAIN, VAL
    from rec.metrics import ranking_metrics, vector_scorer

    vocab = ds.vocab
    urow, mrow = features.user_row(), features.movie_row()
    u_feat = np.array([urow.get(str(i), -1) for i in vocab.user_ids], dtype=np.int64)
    m_feat = np.array([mrow.get(str(i), -1) for i in vocab.movie_ids], dtype=np.int64)
    if (u_feat < 0).any() or (m_feat < 0).any():
        return None
    user_vecs, movie_vecs = features.users[u_feat], features.movies[m_feat]
    tu, tm, _ = ds.part(TRAIN)
    vu, vm, vr = ds.part(VAL)
    rel = vr >= LIKED
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
        out = np.full(s.shape, -np.inf)
        rows = np.repeat(np.arange(len(block)), c).reshape(len(block), c)
        out[rows[ok], cand[ok]] = probs.reshape(len(block), c)[ok]
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
        from rec.manifest import fingerprint
        from rec.paths import read_json, reading, require

        folder = paths.ctr_dir / MODEL_DIR
        run = "rec ctr-train --data movielens"
        config = read_json(folder / CONFIG_FILE, run, keys=("features", "model"))
        with reading(folder / CONFIG_FILE, run):
            kind = config["features"].get("kind")
        if kind != "movielens":
            raise UsageError(f"{folder} holds a CTR model for Criteo data, not MovieLens: "
                             "run `rec ctr-train --data movielens` first")
        require([folder / WEIGHTS_FILE], "rec ctr-train --data movielens")
        if config.get("data_fingerprint") != fingerprint(paths.dataset_file("split.npy")):
            raise UsageError("output/ctr was trained on another output/dataset: "
                             "run `rec ctr-train --data movielens` again")
        fields = MovieLensFields.from_dataset(dataset, config["features"].get("crosses", False))
        with reading(folder / WEIGHTS_FILE, run):
            net = NumpyCtr.load(folder / WEIGHTS_FILE, config["model"])
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
