"""The default kind, `--match softmax`: the recall-then-rank two-tower
(rec.models.recall_rank), declared as KIND (rec.twotower.kind), with its training glue: the
user histories the user tower reads, the joint objective `rec train` gives
rec.engine.trainer.fit, the like-calibration, and the saved vectors of a trained network.
Paddle is imported by the functions that run the network, never by importing this module.

One step takes a batch of users and, for each, scores the whole catalogue:
  pick loss    softmax cross-entropy of the user's training movies, each weighted by
               `like_weight` (1 for a rating >= RELEVANT, DISLIKED_WEIGHT below): the
               movies a user picks *and likes* are what recommend must find, the others
               still say something about taste
  rating loss  mean squared error of the rating head on the same users' training ratings
The user's own history is the tower's input, with dropout (see rec.models.recall_rank);
rec.twotower.fullstep computes a step (sampled's for large catalogues).

Validation each epoch, on a fixed seeded sample of VAL_USERS users with a liked rating in
the dataset's VAL part (rec train passes the tuning view, rec.datasets.tuning: that is the
tuning slice, never the evaluation split): RMSE/MAE of the rating head on their ratings,
and HR@10 / NDCG@10 of the final order with the evaluate protocol, for each like weight of
LIKE_WEIGHTS (all ranked in one pass, each as a shortlist of the best by pick logit:
rec.twotower.topscores.like_weight_shortlists); the best weight is kept. The best epoch is
the one with the best NDCG@10.
"""

from __future__ import annotations

import numpy as np

from rec.datasets.contract import RELEVANT, Dataset
from rec.metrics import dense_chunk, ranking_metrics, rmse_mae
from rec.paths import OPTIMIZER, PARAMS
from rec.scoring import like_calibration, stars_pairs
from rec.twotower.kind import Auto, Kind
from rec.twotower.topscores import like_weight_shortlists

DISLIKED_WEIGHT = 0.1  # pick-loss weight of a training rating below RELEVANT (measured)
# final order: pick logit + w * log P(like), w chosen each epoch on the tuning slice among
# these (the config's like_weight; 0.25 for models saved before the choice was made)
LIKE_WEIGHTS = (0.0, 0.1, 0.25, 0.5, 1.0)
RATING_LOSS = 4.0  # weight of the rating loss beside the pick loss (measured: 1 -> RMSE 0.852,
#                   2 -> 0.8505, 4 -> 0.848 on ml-1m, HR@10 and NDCG@10 within 0.001)
LR_HORIZON = 20  # epochs over which the learning rate decays to a tenth
VAL_USERS = 1500  # validation each epoch: a fixed sample of users
CALIBRATION = 100_000  # training ratings the like-calibration is fitted on
EVAL_USERS = 1024
LARGE_USER_BATCH = 128  # measured on 62k movies: 512 users a step hold ~1 GiB of candidates


class RecallRank(Kind):
    """The kind's network, training and vectors; the functions below do the work."""

    def batch_size(self, n_train: int, n_users: int, n_movies: int) -> int:
        from rec.twotower import sampled

        size = auto_user_batch(n_users)
        # a catalogue the step samples (rec.twotower.sampled): its candidates grow with the
        # batch
        return min(size, LARGE_USER_BATCH) if sampled.is_large(n_movies) else size

    def model_config(self, ds: Dataset, train_mean: float, params):
        from rec.twotower import sampled

        return model_config(ds, train_mean, tower_dim=params.tower_dim,
                            history_dropout=params.dropout,
                            sparse_embeddings=sampled.lazy_adam(ds.n_movies,
                                                                params.weight_decay))

    def network(self, config):
        from rec.models.recall_rank import RecallRankTwoTower

        return RecallRankTwoTower(config)

    def saved_network(self, model_json: dict):
        from rec.models.recall_rank import RecallRankConfig

        return self.network(RecallRankConfig.from_json(model_json))

    def objective(self, net, optimizer, ds: Dataset, batch_size: int, config: dict):
        return recall_rank_objective(net, optimizer, ds, batch_size, config)

    def saved_vectors(self, model, ds: Dataset) -> tuple:
        hist = Histories(ds, model.config.global_mean)
        user_vecs, movie_vecs = trained_vectors(model, ds, hist)
        return user_vecs, movie_vecs, final_scoring(model, user_vecs, movie_vecs, hist)

    def vector_mismatch(self, model, ds: Dataset, user_vecs, movie_vecs, scoring: dict, users,
                        movies) -> float:
        """Both heads: the pick logits and the predicted stars."""
        return vector_mismatch(model, ds, user_vecs, movie_vecs, scoring, users, movies)

    def check_scoring(self, scoring: dict, dim: int) -> None:
        split = int(scoring["split"])
        assert 0 < split < dim and float(scoring["offset"]) == scoring["offset"]
        like = scoring.get("like")
        assert like is None or all(np.isfinite(float(like[k])) for k in ("a", "b", "weight"))

    def user_tower(self, model, ds: Dataset, users: np.ndarray) -> tuple:
        from rec.twotower.export import RecallUserTower

        rows = [t.numpy() for t in Histories(ds, model.config.global_mean).inputs(users)]
        specs = [("demographics", "int64", [None, 3]),
                 ("watched", "float32", [None, ds.n_movies]),
                 ("rated", "float32", [None, ds.n_movies])]
        return RecallUserTower(model), specs, rows

    def fold_in_file(self, model) -> dict[str, bytes]:
        from rec.twotower.foldin import parts_file

        return parts_file(model.fold_in_parts())


KIND = RecallRank(
    name="softmax", help="recall + rating head",
    auto=Auto(patience=5, lr=1e-2, epochs=20, tower_dim=64, dropout=0.5),
    monitor=("tune_ndcg@10", True, "tune NDCG@10", "best_ndcg"),
    columns={"pick_loss": "pick loss", "rating_loss": "rating loss",
             "tune_hr@10": "tune HR@10", "tune_ndcg@10": "tune NDCG@10", "tune_rmse": "tune RMSE"},
    finite=("tune_ndcg@10", "tune_rmse"),
    keys=("tune_hr@10", "tune_ndcg@10", "tune_rmse", "tune_mae", "pick_loss", "rating_loss"),
    recalls=True, folds_in=True,
    formulas=("pick = u[:split] . m[:split]  (the recall logit; rank candidates by it)",
              "stars = offset + u[split:] . m[split:]  (predicted rating, clip to `clip`)",
              "order = pick + like.weight * log sigmoid(like.a * stars + like.b)"),
    user_inputs="demographics = [gender, age, occupation] indices (output/dataset/vocab.json); "
                "for a user's n training ratings r_j of movie indices j: "
                "watched[j] = 1/sqrt(n), rated[j] = (r_j - global_mean)/sqrt(n), 0 elsewhere")


def auto_user_batch(n_users: int) -> int:
    """Users per step: the largest power of two <= n_users / 8 within [32, 512] (ml-1m gets
    512, 12 steps an epoch; a 600-user dataset 64)."""
    size = 32
    while size * 2 <= min(512, n_users / 8):
        size *= 2
    return size


def model_config(ds: Dataset, global_mean: float, **sizes):
    from rec.models.recall_rank import RecallRankConfig

    v = ds.vocab
    return RecallRankConfig(
        n_movies=ds.n_movies, n_genders=len(v.genders), n_ages=len(v.ages),
        n_occupations=len(v.occupations), n_genres=len(v.genres),
        n_title_words=len(v.title_words), genre_len=int(ds.movie_genres.shape[1]),
        title_len=int(ds.movie_titles.shape[1]), global_mean=global_mean,
        rating_range=ds.rating_range, **sizes)


class Histories:
    """Each user's known ratings (CSR by user) and the dense rows the towers read: the
    training ratings, and a held-out user's given ones (rec.datasets.contract: GIVEN).
    `users_with_history` (the users training iterates over) are those with training
    ratings, so a held-out user's given ratings are an input of validation and of their
    saved vector only, never of a training step."""

    def __init__(self, ds: Dataset, global_mean: float):
        ku, km, kr = ds.known()
        if len(ku) and not (ku[1:] >= ku[:-1]).all():  # usually stored user by user already
            order = np.argsort(ku, kind="stable")
            ku, km, kr = ku[order], km[order], kr[order]
        # int32 movies: numpy indexes with them, and 23M ratings take 92 MB less
        self.movies = km.astype(np.int32, copy=False)
        self.ratings = kr.astype(np.float32, copy=False)
        self.start = np.searchsorted(ku, np.arange(ds.n_users + 1))
        self.n_movies, self.mean = ds.n_movies, global_mean
        self.demographics = np.ascontiguousarray(ds.users[:, 1:4], dtype=np.int64)
        held_out = np.zeros(ds.n_users, bool)
        held_out[ds.held_out_users()] = True
        self.users_with_history = np.flatnonzero((np.diff(self.start) > 0) & ~held_out)

    def rows(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(row, movie, rating, 1/sqrt(count)) of every known rating of `users`."""
        lo, hi = self.start[users], self.start[users + 1]
        counts = hi - lo
        row = np.repeat(np.arange(len(users)), counts)
        idx = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi)]) if len(users) else \
            np.zeros(0, np.int64)
        norm = (1.0 / np.sqrt(np.maximum(counts, 1))).astype(np.float32)
        return row, self.movies[idx], self.ratings[idx], norm

    def inputs(self, users: np.ndarray) -> tuple:
        """The user tower's inputs for `users`: demographics, watched bag, rated bag."""
        row, movie, rating, norm = self.rows(users)
        return tower_inputs(self.demographics[users], row, movie, rating, norm, len(users),
                            self.n_movies, self.mean)


def tower_inputs(demographics, row, movie, rating, norm, n_users, n_movies, mean) -> tuple:
    from rec.engine.runtime import host_tensor  # through runtime: it sets paddle's process up

    watched = np.zeros((n_users, n_movies), np.float32)
    rated = np.zeros((n_users, n_movies), np.float32)
    watched[row, movie] = norm[row]
    rated[row, movie] = (rating - mean) * norm[row]
    return host_tensor(demographics), host_tensor(watched), host_tensor(rated)


class MovieInputs:
    """Every movie's tower inputs, kept on the device."""

    def __init__(self, ds: Dataset):
        from rec.engine.runtime import paddle

        self.ids = paddle.arange(ds.n_movies, dtype="int64")
        self.genres = paddle.to_tensor(np.ascontiguousarray(ds.movie_genres, dtype=np.int64))
        self.titles = paddle.to_tensor(np.ascontiguousarray(ds.movie_titles, dtype=np.int64))

    def all(self) -> tuple:
        return self.ids, self.genres, self.titles


def trained_vectors(net, ds: Dataset, hist: Histories | None = None,
                    users: np.ndarray | None = None, batch: int = EVAL_USERS,
                    movies: MovieInputs | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The saved vectors (float32) of `users` (default: all) and of every movie, in
    evaluation mode, `batch` users at a time (fewer for a large catalogue: dense_chunk).
    `hist` and `movies`, when given, are reused (training validates every epoch)."""
    from rec.engine.runtime import paddle

    hist = hist or Histories(ds, net.config.global_mean)
    movies = movies or MovieInputs(ds)
    batch = dense_chunk(ds.n_movies, batch)
    users = np.arange(ds.n_users) if users is None else users
    net.eval()
    with paddle.no_grad():
        m = net.movie_vectors(*movies.all()).numpy()
        u = [net.user_vectors(*hist.inputs(users[i: i + batch])).numpy()
             for i in range(0, len(users), batch)]
    u = np.concatenate(u) if u else np.zeros((0, m.shape[1]), np.float32)
    return u.astype(np.float32), m.astype(np.float32)


def final_scoring(net, user_vecs: np.ndarray, movie_vecs: np.ndarray,
                  hist: Histories, users: np.ndarray | None = None,
                  sample: tuple | None = None) -> dict:
    """scoring.json for these vectors (user_vecs[i] is user users[i], default all): the
    split of the vectors, the like-calibration fitted on (a sample of at most CALIBRATION
    of) those users' training ratings (held-out users' given ones left out), and the
    weight of log P(like) in the order. `sample`: calibration_sample(hist, users), when
    the caller keeps it (validation: the same users every epoch)."""
    base = net.scoring()
    users = np.arange(len(user_vecs)) if users is None else users
    rows, movies, liked = sample or calibration_sample(hist, users)
    a, b = like_calibration(stars_pairs(user_vecs[rows], movie_vecs[movies], base), liked)
    return {**base, "like": {"a": a, "b": b, "weight": float(net.config.like_weight)}}


def calibration_sample(hist: Histories, users: np.ndarray) -> tuple:
    """(rows into `users`, movies, liked) of the like-calibration's seeded sample of at most
    CALIBRATION of `users`' training ratings."""
    row, movie, rating, _ = hist.rows(users)
    trained = np.isin(users, hist.users_with_history)[row]
    row, movie, rating = row[trained], movie[trained], rating[trained]
    pick = np.random.default_rng(0).permutation(len(row))[:CALIBRATION]
    return row[pick], movie[pick], rating[pick] >= RELEVANT


def recall_rank_objective(net, optimizer, ds: Dataset, batch_users: int,
                          config: dict):
    """The joint pick + rating objective. The learning rate of epoch e is the optimizer's
    times max(0.1, 1 - 0.9 (e - 1) / (LR_HORIZON - 1)): down linearly to a tenth at epoch
    LR_HORIZON, then level (measured on ml-1m: +0.01 NDCG@10 over a constant rate or an
    exponential decay); a function of the epoch alone, so --resume retraces a whole run."""
    from rec.engine import runtime
    from rec.engine.trainer import Objective, Trainable
    from rec.twotower import fullstep, sampled

    hist = Histories(ds, net.config.global_mean)
    movies = MovieInputs(ds)
    _, (vu, vm, vr) = ds.train_val()
    tu, tm, _ = ds.known()  # not ranked: a held-out user's given movies too
    rel = vr >= RELEVANT
    val_users = np.unique(vu[rel])
    if not len(val_users):  # nothing to choose epochs and the like weight on
        from rec.errors import UsageError

        raise UsageError(f"the tuning slice has no rating of {RELEVANT:g} stars or more to "
                         "choose epochs on: too few ratings for this split (more users, or "
                         "--split random)")
    val_users = np.sort(np.random.default_rng(0).permutation(val_users)[:VAL_USERS])
    # the like-calibration needs training ratings: held-out users (--split users) have none
    cal_users = np.setdiff1d(np.random.default_rng(1).permutation(hist.users_with_history)
                             [:VAL_USERS], val_users) if len(ds.held_out_users()) else \
        np.zeros(0, np.int64)
    position = np.full(ds.n_users, -1)
    position[val_users] = np.arange(len(val_users))
    in_val = position[vu] >= 0
    vu, vm, vr, rel = position[vu[in_val]], vm[in_val], vr[in_val], rel[in_val]
    seen = position[tu] >= 0
    su, sm = position[tu[seen]], tm[seen]
    part = Trainable(net, optimizer, PARAMS, OPTIMIZER)
    large = sampled.is_large(ds.n_movies)
    if large:
        trained = np.repeat(np.isin(np.arange(ds.n_users), hist.users_with_history),
                            np.diff(hist.start))
        sampler = sampled.Candidates(hist.movies[trained], len(hist.users_with_history),
                                     ds.n_movies)

    base_lr = optimizer.get_lr()

    def train_epoch(epoch) -> tuple[dict, int]:
        rank, world = epoch.job.rank, epoch.job.world
        optimizer.set_lr(base_lr * max(0.1, 1 - 0.9 * (epoch.number - 1) / (LR_HORIZON - 1)))
        order = epoch.rng().permutation(hist.users_with_history)
        n_batches = (len(order) + batch_users - 1) // batch_users
        epoch.started(n_batches)
        sums = {"pick_loss": 0.0, "rating_loss": 0.0}
        n = 0
        negatives = epoch.rng(sampled.NEGATIVE_STREAM) if large else None
        dropout = epoch.rng(fullstep.DROPOUT_STREAM)

        def step_arrays(b: int):  # the numpy side of step b; None: too few users to share
            users = order[b * batch_users: (b + 1) * batch_users]
            if len(users) < world:
                return None
            rows = fullstep.step_rows(hist, users, rank, world, dropout,
                                      net.config.history_dropout)
            if large:
                return sampled.sampled_arrays(hist, rows, sampler, negatives, DISLIKED_WEIGHT)
            return fullstep.full_arrays(hist, rows, DISLIKED_WEIGHT)

        for arrays in fullstep.StepFeed(step_arrays, n_batches, ahead=runtime.math_threads() > 1):
            if large:
                pick, rating_loss = sampled.sampled_losses(part.train_net, movies, arrays)
            else:
                pick, rating_loss = fullstep.full_losses(part.train_net, movies, arrays)
            loss = pick + RATING_LOSS * rating_loss
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()
            rows = arrays.rows
            sums["pick_loss"] += float(pick) * rows.users_share
            sums["rating_loss"] += float(rating_loss) * rows.users_share
            n += len(rows.users)
            epoch.advance()
        return sums, n

    # the ranking split in equal chunks among the math threads (numpy releases the GIL),
    # each no larger than dense_chunk's: the same scores, rows ranked on their own
    threads = runtime.math_threads()
    val_chunk = min(dense_chunk(ds.n_movies), -(-max(len(val_users), 1) // threads))

    both = np.r_[val_users, cal_users]
    sample = calibration_sample(hist, both)  # the like-calibration's ratings, every epoch

    def validate() -> dict:
        user_vecs, movie_vecs = trained_vectors(net, ds, hist, both, movies=movies)
        scoring = final_scoring(net, user_vecs, movie_vecs, hist, both, sample)
        user_vecs = user_vecs[: len(val_users)]
        rmse, mae = rmse_mae(stars_pairs(user_vecs[vu], movie_vecs[vm], scoring), vr,
                             net.config.rating_range)
        # the like weight: chosen here, on the tuning slice, every weight ranked in one pass
        orders = like_weight_shortlists(user_vecs, movie_vecs, scoring, LIKE_WEIGHTS, su, sm)
        rankings = ranking_metrics(orders, len(val_users), ds.n_movies, su, sm, vu[rel],
                                   vm[rel], chunk=val_chunk, threads=threads)
        best = None
        for w in LIKE_WEIGHTS:
            if best is None or rankings[w]["ndcg@10"] > best[1]["ndcg@10"] + 1e-9:
                best = w, rankings[w]
        w, ranking = best
        net.config.like_weight = w  # saved with the epoch's weights when it is the best
        config["model"]["like_weight"] = w
        return {"tune_rmse": rmse, "tune_mae": mae, "tune_hr@10": ranking["hr@10"],
                "tune_ndcg@10": ranking["ndcg@10"], "like_weight": w}

    def save_best(epoch: int, folder) -> None:
        runtime.save_model(folder, net, config)

    return Objective([part], train_epoch, validate, save_best)


def vector_mismatch(model, ds: Dataset, user_vecs: np.ndarray, movie_vecs: np.ndarray,
                    scoring: dict, users: np.ndarray, movies: np.ndarray) -> float:
    """The largest difference between the network's pick logits and predicted stars on
    (users[i], movies[i]) pairs and rec.scoring's from the saved vectors."""
    from rec.engine.runtime import paddle

    if len(users) == 0:
        return 0.0
    from_vectors = stars_pairs(user_vecs[users], movie_vecs[movies], scoring)
    distinct, row = np.unique(users, return_inverse=True)
    hist = Histories(ds, model.config.global_mean)
    model.eval()
    step = dense_chunk(ds.n_movies, len(distinct))  # all at once unless the catalogue is large
    logits, rated = np.zeros(len(users), np.float32), np.zeros(len(users), np.float32)
    with paddle.no_grad():
        for i in range(0, len(distinct), step):
            at = (row >= i) & (row < i + step)
            out = model(*hist.inputs(distinct[i: i + step]), *MovieInputs(ds).all())
            logits[at] = out[0].numpy()[row[at] - i, movies[at]]
            rated[at] = out[1].numpy()[row[at] - i, movies[at]]
    pick = np.einsum("ij,ij->i", *[v[:, : scoring["split"]] for v in
                                    (user_vecs[users], movie_vecs[movies])])
    return float(max(np.abs(rated - from_vectors).max(), np.abs(logits - pick).max()))
