"""Two-tower training glue (imports paddle): the network's sizes from the dataset, feeding
the preprocessed arrays in batches, predictions, the tower vectors save-features stores,
rebuilding the trained model from output/model alone, and the rating objective `rec train`
gives rec.engine.trainer.fit.

Only train, evaluate and save-features import this module (inside their commands).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from rec.storage import unit
from rec.datasets.contract import Dataset, is_dataset
from rec.errors import UsageError
from rec.metrics import dense_chunk, rmse_mae
from rec.paths import OPTIMIZER, PARAMS, Paths, read_json, reading
from rec.engine.runtime import load_weights, save_model  # first: it quiets paddle's import noise
from rec.engine.trainer import Epoch, Objective, Trainable

import paddle  # noqa: E402

from rec.models.recall_rank import RecallRankConfig, RecallRankTwoTower  # noqa: E402
from rec.models.two_tower import TwoTower, TwoTowerConfig  # noqa: E402

EVAL_BATCH = 16384


def model_config(ds: Dataset, match: str, global_mean: float, **sizes) -> TwoTowerConfig:
    """Network sizes from the dataset itself: vocabularies and padded widths."""
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
        self.users = paddle.to_tensor(np.ascontiguousarray(ds.users, dtype=np.int64))
        self.genres = paddle.to_tensor(np.ascontiguousarray(ds.movie_genres, dtype=np.int64))
        self.titles = paddle.to_tensor(np.ascontiguousarray(ds.movie_titles, dtype=np.int64))

    def inputs(self, users: np.ndarray, movies: np.ndarray) -> tuple:
        """Model inputs for (user, movie) index pairs: the distinct users' feature rows, the
        distinct movies' ids, genres and titles, and the two index tensors that map each
        pair back to them (see TwoTower.forward)."""
        distinct_users, user_index = np.unique(users, return_inverse=True)
        distinct_movies, movie_index = np.unique(movies, return_inverse=True)
        u = paddle.to_tensor(distinct_users.astype(np.int64))
        m = paddle.to_tensor(distinct_movies.astype(np.int64))
        return (paddle.gather(self.users, u), m, paddle.gather(self.genres, m),
                paddle.gather(self.titles, m), paddle.to_tensor(user_index.astype(np.int64)),
                paddle.to_tensor(movie_index.astype(np.int64)))

    def all_users(self) -> paddle.Tensor:
        return self.users

    def all_movies(self) -> tuple:
        m = paddle.arange(self.genres.shape[0], dtype="int64")
        return m, self.genres, self.titles


def predict(model: TwoTower, feeder: Feeder, users: np.ndarray, movies: np.ndarray,
            batch: int = EVAL_BATCH) -> np.ndarray:
    """Raw model outputs (unclipped) for (user, movie) index pairs."""
    model.eval()
    out = []
    with paddle.no_grad():
        for i in range(0, len(users), batch):
            out.append(model(*feeder.inputs(users[i: i + batch], movies[i: i + batch])).numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def rating_metrics(model: TwoTower, feeder: Feeder, users: np.ndarray, movies: np.ndarray,
                   ratings: np.ndarray) -> dict:
    """Validation RMSE and MAE of the model's predictions, clipped to the rating range."""
    rmse, mae = rmse_mae(predict(model, feeder, users, movies), ratings,
                         model.config.rating_range)
    return {"tune_rmse": rmse, "tune_mae": mae}


def tower_vectors(model: TwoTower, feeder: Feeder, batch: int = EVAL_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """The vectors save-features stores: every user's and every movie's, as float32."""
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


def load_trained(paths: Paths, ds: Dataset | None = None) -> tuple[TwoTower | RecallRankTwoTower, dict]:
    """Rebuild the network (either kind) from output/model/best/config.json alone and load
    its best weights, both from one rec train run (rec.storage.unit.read). An output/model
    of an older rec (its files beside the checkpoint, no best/) reads as missing."""
    return unit.read(paths.model.best, "rec train", lambda s: _load_trained(s, paths, ds))


def _load_trained(snapshot, paths: Paths, ds: Dataset | None):
    best = paths.model
    for path in (best.config, best.params):
        if not snapshot.is_file(path.name):
            raise UsageError(f"missing {path}: run `rec train` first")
    config = read_json(best.config, "rec train", keys=("model",), snapshot=snapshot)
    with reading(best.config, "rec train"):
        if config["model"].get("match") == "softmax":
            model = RecallRankTwoTower(RecallRankConfig.from_json(config["model"]))
            n_users = ds.n_users if ds is not None else None  # any user: fold-in
        else:
            model = TwoTower(TwoTowerConfig.from_json(config["model"]))
            n_users = model.config.n_users
        trained_on = (config.get("dataset") or {}).get("fingerprint")
    if ds is None:
        pass
    elif (ds.n_users, ds.n_movies) != (n_users, model.config.n_movies) or \
            not (trained_on is None or is_dataset(trained_on, paths)):
        raise UsageError("output/model was trained on another dataset than output/dataset: "
                         "run `rec train` again")
    load_weights(model, io.BytesIO(snapshot.read_bytes(PARAMS)), best.params)
    return model, config


def saved_vectors(model, ds: Dataset) -> tuple[np.ndarray, np.ndarray, dict]:
    """(user vectors, movie vectors, scoring) of a trained model of either kind: what
    save-features writes and evaluate ranks by."""
    if isinstance(model, RecallRankTwoTower):
        from rec.twotower import retrieval

        hist = retrieval.Histories(ds, model.config.global_mean)
        user_vecs, movie_vecs = retrieval.trained_vectors(model, ds, hist)
        return user_vecs, movie_vecs, retrieval.final_scoring(model, user_vecs, movie_vecs, hist)
    user_vecs, movie_vecs = tower_vectors(model, Feeder(ds))
    return user_vecs, movie_vecs, model.scoring()


def vector_mismatch(model, ds: Dataset, user_vecs: np.ndarray, movie_vecs: np.ndarray,
                    scoring: dict, users: np.ndarray, movies: np.ndarray) -> float:
    """The largest difference between the network's own outputs on (users[i], movies[i])
    pairs and what rec.scoring computes from the saved vectors (both heads for softmax)."""
    from rec.scoring import pick_logits, stars_pairs

    if len(users) == 0:
        return 0.0
    from_vectors = stars_pairs(user_vecs[users], movie_vecs[movies], scoring)
    if not isinstance(model, RecallRankTwoTower):
        return float(np.abs(predict(model, Feeder(ds), users, movies) - from_vectors).max())
    from rec.twotower import retrieval

    distinct, row = np.unique(users, return_inverse=True)
    hist = retrieval.Histories(ds, model.config.global_mean)
    model.eval()
    step = dense_chunk(ds.n_movies, len(distinct))  # all at once unless the catalogue is large
    logits, rated = np.zeros(len(users), np.float32), np.zeros(len(users), np.float32)
    with paddle.no_grad():
        for i in range(0, len(distinct), step):
            at = (row >= i) & (row < i + step)
            out = model(*hist.inputs(distinct[i: i + step]), *retrieval.MovieInputs(ds).all())
            logits[at] = out[0].numpy()[row[at] - i, movies[at]]
            rated[at] = out[1].numpy()[row[at] - i, movies[at]]
    pick = np.einsum("ij,ij->i", *[v[:, : scoring["split"]] for v in
                                    (user_vecs[users], movie_vecs[movies])])
    return float(max(np.abs(rated - from_vectors).max(), np.abs(logits - pick).max()))


# --- the rating objective, for rec.engine.trainer.fit ----------------------------------------------


def rating_objective(net: TwoTower, optimizer, ds: Dataset, batch_size: int,
                     config: dict) -> Objective:
    """Fit the predicted rating to the training ratings (mean squared error), validate on
    RMSE and MAE; the best epoch's weights are saved with `config` (runtime.save_model)."""
    (tu, tm, tr), (vu, vm, vr) = ds.train_val()
    feeder = Feeder(ds)
    targets = paddle.to_tensor(tr.astype(np.float32))
    part = Trainable(net, optimizer, PARAMS, OPTIMIZER)

    def train_epoch(epoch: Epoch) -> tuple[dict, int]:
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

    def save_best(epoch: int, folder: Path) -> None:
        save_model(folder, net, config)

    return Objective([part], train_epoch, lambda: rating_metrics(net, feeder, vu, vm, vr),
                     save_best)
