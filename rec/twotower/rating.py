"""The course's rating kinds, `--match dot` and `--match cosine` (rec.models.two_tower: the
predicted rating is mean + u.m + biases, or 5 * cos(u, m)), declared as DOT and COSINE
(rec.twotower.kind), with their training glue: the network's sizes from the dataset, feeding
the preprocessed arrays in batches, predictions, the tower vectors save-features stores,
and the rating objective `rec train` gives rec.engine.trainer.fit (best tune RMSE). Paddle is
imported by the functions that run the network, never by importing this module.
"""

from __future__ import annotations

import numpy as np

from rec.datasets.contract import Dataset
from rec.metrics import rmse_mae
from rec.paths import OPTIMIZER, PARAMS
from rec.scoring import stars_pairs
from rec.twotower.kind import Auto, Kind

EVAL_BATCH = 16384


class Rating(Kind):
    """A rating kind's network, training and vectors; its name is the network's match."""

    def batch_size(self, n_train: int, n_users: int, n_movies: int) -> int:
        return auto_batch_size(n_train)

    def model_config(self, ds: Dataset, train_mean: float, params):
        return model_config(ds, self.name, train_mean, tower_dim=params.tower_dim,
                            dropout=params.dropout)

    def network(self, config):
        from rec.models.two_tower import TwoTower

        return TwoTower(config)

    def saved_network(self, model_json: dict):
        from rec.models.two_tower import TwoTowerConfig

        return self.network(TwoTowerConfig.from_json(model_json))

    def objective(self, net, optimizer, ds: Dataset, batch_size: int, config: dict):
        return rating_objective(net, optimizer, ds, batch_size, config)

    def saved_vectors(self, model, ds: Dataset) -> tuple:
        user_vecs, movie_vecs = tower_vectors(model, Feeder(ds))
        return user_vecs, movie_vecs, model.scoring()

    def vector_mismatch(self, model, ds: Dataset, user_vecs, movie_vecs, scoring: dict, users,
                        movies) -> float:
        if len(users) == 0:
            return 0.0
        from_vectors = stars_pairs(user_vecs[users], movie_vecs[movies], scoring)
        return float(np.abs(predict(model, Feeder(ds), users, movies) - from_vectors).max())

    def check_scoring(self, scoring: dict, dim: int) -> None:
        assert float(scoring["scale"])

    def user_tower(self, model, ds: Dataset, users: np.ndarray) -> tuple:
        from rec.twotower.export import RatingUserTower

        rows = [np.ascontiguousarray(ds.users[users], dtype=np.int64)]
        return RatingUserTower(model), [("users", "int64", [None, rows[0].shape[1]])], rows


RATING = dict(  # what both rating kinds share
    auto=Auto(patience=3, lr=5e-3, epochs=10, tower_dim=32, dropout=0.1),
    monitor=("tune_rmse", False, "tune RMSE", "best_rmse"),
    columns={"train_loss": "train loss", "tune_rmse": "tune RMSE", "tune_mae": "tune MAE"},
    finite=("tune_rmse",), keys=("tune_rmse", "tune_mae", "train_loss"),
    recalls=False, folds_in=False,
    user_inputs="users = the user's row of output/dataset/users.npy [user index, gender, age, "
                "occupation]")
DOT = Rating(name="dot", help="mean + u.m + biases",
             formulas=("stars = order = offset + scale * (u . m)  (clip stars to `clip`)",),
             **RATING)
COSINE = Rating(name="cosine", help="the course's 5*cos",
                formulas=("stars = order = offset + scale * cos(u, m)  (clip stars to `clip`)",),
                **RATING)


def auto_batch_size(n_train: int) -> int:
    """Ratings per step: large batches are fast (per-step overhead dominates on CPU), but a
    small dataset needs enough steps per epoch to learn: the largest power of two <=
    n_train / 64, within [256, 8192]. ml-1m (900k training ratings) gets 8192."""
    size = 256
    while size * 2 <= min(8192, n_train / 64):
        size *= 2
    return size


def model_config(ds: Dataset, match: str, global_mean: float, **sizes):
    """Network sizes from the dataset itself: vocabularies and padded widths."""
    from rec.models.two_tower import TwoTowerConfig

    v = ds.vocab
    return TwoTowerConfig(
        n_users=ds.n_users, n_genders=len(v.genders), n_ages=len(v.ages),
        n_occupations=len(v.occupations), n_movies=ds.n_movies, n_genres=len(v.genres),
        n_title_words=len(v.title_words), genre_len=int(ds.movie_genres.shape[1]),
        title_len=int(ds.movie_titles.shape[1]), match=match, global_mean=global_mean,
        rating_range=ds.rating_range, **sizes)


class Feeder:
    """Keeps the feature tables on the device and turns index arrays into model inputs."""

    def __init__(self, ds: Dataset):
        from rec.engine.runtime import paddle  # through runtime, which sets paddle's process up

        self.users = paddle.to_tensor(np.ascontiguousarray(ds.users, dtype=np.int64))
        self.genres = paddle.to_tensor(np.ascontiguousarray(ds.movie_genres, dtype=np.int64))
        self.titles = paddle.to_tensor(np.ascontiguousarray(ds.movie_titles, dtype=np.int64))

    def inputs(self, users: np.ndarray, movies: np.ndarray) -> tuple:
        """Model inputs for (user, movie) index pairs: the distinct users' feature rows, the
        distinct movies' ids, genres and titles, and the two index tensors that map each
        pair back to them (see TwoTower.forward)."""
        from rec.engine.runtime import paddle

        distinct_users, user_index = np.unique(users, return_inverse=True)
        distinct_movies, movie_index = np.unique(movies, return_inverse=True)
        u = paddle.to_tensor(distinct_users.astype(np.int64))
        m = paddle.to_tensor(distinct_movies.astype(np.int64))
        return (paddle.gather(self.users, u), m, paddle.gather(self.genres, m),
                paddle.gather(self.titles, m), paddle.to_tensor(user_index.astype(np.int64)),
                paddle.to_tensor(movie_index.astype(np.int64)))

    def all_users(self):
        return self.users

    def all_movies(self) -> tuple:
        from rec.engine.runtime import paddle

        m = paddle.arange(self.genres.shape[0], dtype="int64")
        return m, self.genres, self.titles


def predict(model, feeder: Feeder, users: np.ndarray, movies: np.ndarray,
            batch: int = EVAL_BATCH) -> np.ndarray:
    """Raw model outputs (unclipped) for (user, movie) index pairs."""
    from rec.engine.runtime import paddle

    model.eval()
    out = []
    with paddle.no_grad():
        for i in range(0, len(users), batch):
            out.append(model(*feeder.inputs(users[i: i + batch], movies[i: i + batch])).numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def rating_metrics(model, feeder: Feeder, users: np.ndarray, movies: np.ndarray,
                   ratings: np.ndarray) -> dict:
    """Validation RMSE and MAE of the model's predictions, clipped to the rating range."""
    rmse, mae = rmse_mae(predict(model, feeder, users, movies), ratings,
                         model.config.rating_range)
    return {"tune_rmse": rmse, "tune_mae": mae}


def tower_vectors(model, feeder: Feeder, batch: int = EVAL_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """The vectors save-features stores: every user's and every movie's, as float32."""
    from rec.engine.runtime import paddle

    model.eval()
    with paddle.no_grad():
        users = feeder.all_users()
        u = np.concatenate([model.user_vectors(users[i: i + batch]).numpy()
                            for i in range(0, users.shape[0], batch)])
        ids, genres, titles = feeder.all_movies()
        m = np.concatenate([model.movie_vectors(ids[i: i + batch], genres[i: i + batch],
                                                titles[i: i + batch]).numpy()
                            for i in range(0, ids.shape[0], batch)])
    return u.astype(np.float32), m.astype(np.float32)


# --- the rating objective, for rec.engine.trainer.fit ----------------------------------------------


def rating_objective(net, optimizer, ds: Dataset, batch_size: int,
                     config: dict):
    """Fit the predicted rating to the training ratings (mean squared error), validate on
    RMSE and MAE; the best epoch's weights are saved with `config` (runtime.save_model)."""
    from rec.engine.runtime import paddle, save_model
    from rec.engine.trainer import Objective, Trainable

    (tu, tm, tr), (vu, vm, vr) = ds.train_val()
    feeder = Feeder(ds)
    targets = paddle.to_tensor(tr.astype(np.float32))
    part = Trainable(net, optimizer, PARAMS, OPTIMIZER)

    def train_epoch(epoch) -> tuple[dict, int]:
        # Data parallel: every rank walks the same global batches and takes its slice of
        # each; DataParallel averages the gradients, so a step sees the whole global batch.
        rank, world = epoch.job.rank, epoch.job.world
        order = epoch.rng().permutation(len(tu))
        n_batches = (len(order) + batch_size - 1) // batch_size
        epoch.started(n_batches)
        loss_sum, n = 0.0, 0
        for b in range(n_batches):
            idx = order[b * batch_size: (b + 1) * batch_size]
            if len(idx) < world:  # every process needs a sample: drop a tiny tail
                break
            idx = idx[rank::world]
            pred = part.train_net(*feeder.inputs(tu[idx], tm[idx]))
            loss = paddle.nn.functional.mse_loss(pred, paddle.gather(targets, paddle.to_tensor(idx)))
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()
            loss_sum += float(loss) * len(idx)
            n += len(idx)
            epoch.advance()
        return {"train_loss": loss_sum}, n

    def save_best(epoch: int, folder) -> None:
        save_model(folder, net, config)

    return Objective([part], train_epoch, lambda: rating_metrics(net, feeder, vu, vm, vr),
                     save_best)
