"""The large-catalogue step of the recall-rank objective (imports paddle): a sampled softmax
with a log-Q correction, used by rec.twotower.recall_rank when the catalogue has more than
SAMPLED_ABOVE movies (ml-25m's 62k), where a full softmax costs batch x catalogue per step
and runs the movie tower over the whole catalogue.

Per step, for B users:
  candidates  C = the movies in the users' own training bags (in-batch positives)
              U a shared sample of NEGATIVES movies drawn, with replacement, by training
              popularity (p_m = training ratings of m / training ratings) from the epoch's
              own generator (Epoch.rng(NEGATIVE_STREAM)), so --resume retraces a run
  logits      u . m + b_m - log Q(m) over C only (the movie tower runs on C alone), where
              Q(m) = P(m in C) = 1 - (1 - f_m)^B (1 - p_m)^S is the chance that m is a
              candidate under this mixture (f_m: share of training users who rated m; S
              draws): the correction of Yi et al. 2019 ("Sampling-Bias-Corrected Neural
              Modeling"), so the softmax over C estimates the full one and b_m keeps
              popularity
  pick loss   the full path's like-weighted cross-entropy, over C
  rating loss the rating head's squared error on the users' own rated movies (all in C)
The user tower reads its bags as (B, |C|) columns with its embedding rows gathered for C
(RecallRankTwoTower.forward's `columns`): the same function of the bag as the dense
(B, catalogue) form, so fold-in and the saved vectors are unchanged.
Memory per step is bounded by B x (the batch's distinct movies + S), not B x catalogue.
"""

from __future__ import annotations

import numpy as np

from rec.engine.runtime import host_tensor  # first: it sets paddle's process up

import paddle  # noqa: E402

SAMPLED_ABOVE = 20_000  # catalogues larger than this train with the sampled softmax
NEGATIVES = 2048  # popularity-sampled negatives shared by a step's users
NEGATIVE_STREAM = 1  # Epoch.rng(NEGATIVE_STREAM) draws the negatives (rng() the order)


def is_large(n_movies: int) -> bool:
    return n_movies > SAMPLED_ABOVE


def lazy_adam(n_movies: int, weight_decay: float) -> bool:
    """Whether a run trains with row-sparse embedding gradients and a lazy Adam (only the
    rows a step touched are updated; RecallRankConfig.sparse_embeddings): a large catalogue
    without weight decay. On ml-25m (62k movies, 128 users a step) the dense AdamW update of
    every table row was 75 of a step's 184 ms, the lazy one 27. Paddle 3.3's AdamW fails on
    row-sparse gradients, hence Adam, which AdamW is without weight decay."""
    return is_large(n_movies) and weight_decay == 0


class Candidates:
    """The negative sampler and the log-Q correction, from the training users' bags."""

    def __init__(self, movies_of_trained: np.ndarray, n_trained_users: int, n_movies: int,
                 negatives: int | None = None):
        counts = np.bincount(movies_of_trained, minlength=n_movies).astype(np.float64)
        self.p = counts / max(counts.sum(), 1.0)
        self.cdf = np.cumsum(self.p)
        self.log_not_user = np.log1p(-np.minimum(counts / max(n_trained_users, 1), 1 - 1e-12))
        self.log_not_drawn = np.log1p(-np.minimum(self.p, 1 - 1e-12))
        self.negatives = negatives or NEGATIVES
        self._log_q: dict[int, np.ndarray] = {}  # batch size -> log Q of every movie

    def draw(self, rng: np.random.Generator, positives: np.ndarray) -> tuple:
        """(C, sorted: the positives and NEGATIVES popularity draws; each positive's index
        in C). One np.unique with its inverse: a third of the time of np.union1d followed
        by np.searchsorted for the positives (measured: 0.7 against 6-8 ms a step at 19k
        positives), the same C."""
        drawn = np.searchsorted(self.cdf, rng.random(self.negatives) * self.cdf[-1],
                                side="right")
        drawn = np.minimum(drawn, len(self.p) - 1)
        columns, where = np.unique(np.concatenate([positives, drawn]), return_inverse=True)
        return columns, where[: len(positives)].reshape(-1)

    def log_q(self, columns: np.ndarray, n_users: int) -> np.ndarray:
        """log Q(m) for the movies `columns` of a step of `n_users` users (float32): a
        gather from the whole catalogue's, computed once per batch size (every step but an
        epoch's last has the same), the same numbers as computing them per step."""
        table = self._log_q.get(n_users)
        if table is None:
            log_miss = n_users * self.log_not_user + self.negatives * self.log_not_drawn
            q = -np.expm1(log_miss)  # 1 - exp(log P(not in C))
            table = self._log_q[n_users] = np.log(np.maximum(q, 1e-30)).astype(np.float32)
        return table[columns]


def column_inputs(demographics, rows, columns, where, mean) -> tuple:
    """The user tower's inputs (numpy) as (B, |columns|) bags (every movie in `columns`) of
    `rows` (rec.twotower.fullstep.StepRows: the history dropout already drawn); `where`:
    each rating's column."""
    watched, rated = rows.bags(where, len(columns), mean)
    return demographics, watched, rated


def sampled_arrays(hist, rows, sampler: Candidates, rng: np.random.Generator,
                   disliked_weight: float):
    """The numpy side of a step over sampled candidates (rec.twotower.fullstep.StepArrays);
    `rows`: the step's users and ratings (StepRows)."""
    from rec.twotower.fullstep import StepArrays, loss_targets

    columns, where = sampler.draw(rng, rows.movie)
    tower = column_inputs(hist.demographics[rows.users], rows, columns, where, hist.mean)
    return StepArrays(rows, tower, *loss_targets(rows, where, len(columns), disliked_weight),
                      offset=hist.mean, columns=columns,
                      log_q=sampler.log_q(columns, len(rows.users)))


def sampled_losses(train_net, movies, arrays) -> tuple:
    """(pick loss, rating loss) of one step over its sampled candidates."""
    from rec.twotower.fullstep import pick_and_rating_losses

    ids = host_tensor(arrays.columns.astype(np.int64))
    logits, centred = train_net(*map(host_tensor, arrays.tower), ids,
                                paddle.gather(movies.genres, ids),
                                paddle.gather(movies.titles, ids), ids, centred=True)
    logits = logits - host_tensor(arrays.log_q)
    return pick_and_rating_losses(logits, centred, arrays)
