"""One training step of the recall-rank objective over the whole catalogue (imports paddle),
and the batch both steps (this one and rec.twotower.sampled's) start from: the users' rows
with the history dropout already drawn.

Per step, for B users (this process's share of the global batch):
  bags         the user tower's dense (B, n_movies) bags, built in numpy from the users'
               ratings after the history dropout (below)
  pick loss    sum_j w_j (logsumexp(logits) - logits_j) over the user's training movies
               j (w_j: 1 for a liked movie, the disliked weight below), averaged over the
               users: the soft-label softmax cross-entropy with labels w / sum(w), times
               sum(w), one fused Paddle kernel
  rating loss  the mean squared error of the rating matrix at the users' rated entries

Why it is built this way (measured on ml-1m, 512 users a step, 2-core EPYC, Paddle 3.3 CPU,
one thread; bench/bench_speed.py measures the whole step again on the machine at hand):
  - The history dropout keeps each nonzero entry of each bag (watched, rated: independent
    masks, as F.dropout on each dense bag did) with probability 1 - p and scales it by
    1 / (1 - p): the same distribution as F.dropout over the dense bags, where a zero stays
    zero, drawn over the batch's ~76k ratings instead of 2 x 2M entries (0.5 ms against
    2 x 15 ms). It comes from the epoch's own generator (Epoch.rng(DROPOUT_STREAM)), so the
    seed fixes it and --resume retraces it, and it is drawn for the whole global batch
    before each data-parallel process takes its users: N processes drop what one would,
    and each divides its sums by its share of the global batch (StepRows), so that N
    processes train as one does, up to float rounding.
  - The fused soft-label cross-entropy costs half of logsumexp plus a dense product, and
    paddle.logsumexp alone is 8x exp + max + sum on CPU. It also ends a drift: the softmax
    ignores an offset common to every movie's pick vector (it adds u . c to every logit of
    a user), so that direction's true gradient is 0, and Adam turned the logsumexp form's
    one-signed float noise there into full-size steps: on ml-1m its movie vectors ended
    with a mean pairwise cosine of 0.95 (0.38 now; HR@10 and NDCG@10 the same), which
    made the "because you rated" reason (a cosine of 0.5 or more) hold for almost any pair.
  - The rating loss gathers the rated entries of the rating matrix (76k of 2M) before the
    subtraction and paddle.square (x ** 2 costs 7x square in forward + backward): half the
    time of a masked dense difference.
  - The dense inputs (the bags, the soft labels) reach Paddle through DLPack, sharing the
    numpy arrays' memory (rec.engine.runtime.host_tensor): paddle.to_tensor copied each
    at about 1 GB/s, 10 ms CPU a step for the three.
  - The pick loss stays the fused kernel: a hand-made logsumexp minus the gathered
    logits (no dense labels) measured 120 ms CPU a step against 110, log_softmax with a
    gather 1,960 (its CPU backward is slow). The rating loss stays a gather from the
    (B, n) rating matrix: from the rated pairs' gathered vectors instead it was 122 ms,
    as Paddle's gather gradient over 76k rows costs more than the matrix it saves.
  - paddle.jit.to_static of this step does not pay: in four runs of bench/bench_speed.py
    (which measures both) it was 96-145 ms a step against 116-133 dynamic on one thread
    (faster once), 109-223 against 101-148 on two (slower each time; PIR's serial executor
    did not help): the step stays dynamic, and there is no fallback to keep.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rec.datasets.contract import RELEVANT

from rec.engine.runtime import host_tensor

import paddle  # noqa: E402 (after rec.engine.runtime, which sets paddle's process up)
import paddle.nn.functional as F  # noqa: E402

DROPOUT_STREAM = 2  # Epoch.rng(DROPOUT_STREAM) draws the history dropout


@dataclass
class StepRows:
    """A step's users and every training rating of theirs: rating i is user row[i]'s (an
    index into `users`), of movie movie[i]; norm is 1/sqrt(the user's count) per user;
    keep_watched / keep_rated scale each rating's entry in the two bags (0 = dropped,
    1 / (1 - p) = kept; all ones without dropout). users_share / ratings_share: the global
    batch's users and ratings over the number of processes, what each process divides its
    sums by, so that averaging the processes' gradients (paddle.DataParallel) gives one
    process's gradient of the whole batch (the local counts in a one-process run)."""

    users: np.ndarray
    row: np.ndarray
    movie: np.ndarray
    rating: np.ndarray
    norm: np.ndarray
    keep_watched: np.ndarray
    keep_rated: np.ndarray
    users_share: float
    ratings_share: float

    def bags(self, columns: np.ndarray | None, n_columns: int, mean: float) -> tuple:
        """(watched, rated) as dense float32 (B, n_columns) arrays, each entry already
        dropped or scaled; `columns`: each rating's column (None: its movie)."""
        col = self.movie if columns is None else columns
        scale = self.norm[self.row]
        watched = np.zeros((len(self.users), n_columns), np.float32)
        rated = np.zeros((len(self.users), n_columns), np.float32)
        watched[self.row, col] = scale * self.keep_watched
        rated[self.row, col] = (self.rating - mean) * scale * self.keep_rated
        return watched, rated


def dropout_scales(rng: np.random.Generator | None, n: int, p: float) -> np.ndarray:
    """n entries' inverted-dropout scales: 0 with probability p, else 1 / (1 - p)."""
    if rng is None or p <= 0:
        return np.ones(n, np.float32)
    return ((rng.random(n) >= p) / (1.0 - p)).astype(np.float32)


def step_rows(hist, users: np.ndarray, rank: int = 0, world: int = 1,
              rng: np.random.Generator | None = None, p: float = 0.0) -> StepRows:
    """This process's rows of the global batch `users` (users[rank::world]), with the
    history dropout `p` drawn from `rng` for the whole global batch first (None: none)."""
    row, movie, rating, norm = hist.rows(users)
    keep_w, keep_r = dropout_scales(rng, len(row), p), dropout_scales(rng, len(row), p)
    shares = len(users) / world, max(len(row), 1) / world
    if world > 1:
        mine = row % world == rank
        row, movie, rating, keep_w, keep_r = (row[mine] // world, movie[mine], rating[mine],
                                              keep_w[mine], keep_r[mine])
        users, norm = users[rank::world], norm[rank::world]
    return StepRows(users, row, movie, rating, norm, keep_w, keep_r, *shares)


def full_losses(train_net, hist, movies, rows: StepRows, disliked_weight: float) -> tuple:
    """(pick loss, rating loss) of one step over the whole catalogue (see the docstring)."""
    n_movies = hist.n_movies
    watched, rated = rows.bags(None, n_movies, hist.mean)
    logits, predicted = train_net(host_tensor(hist.demographics[rows.users]),
                                  host_tensor(watched), host_tensor(rated),
                                  *movies.all())
    return pick_and_rating_losses(logits, predicted, rows, rows.movie, disliked_weight)


def pick_and_rating_losses(logits, predicted, rows: StepRows, col: np.ndarray,
                           disliked_weight: float) -> tuple:
    """The two losses from the (B, C) pick logits and predicted ratings, where the step's
    ratings sit at (rows.row, col)."""
    n_users, n_cols = len(rows.users), int(logits.shape[1])
    w = np.where(rows.rating >= RELEVANT, 1.0, disliked_weight).astype(np.float32)
    w_sum = np.bincount(rows.row, w, minlength=n_users).astype(np.float32)
    labels = np.zeros((n_users, n_cols), np.float32)
    labels[rows.row, col] = w / np.maximum(w_sum, 1e-12)[rows.row]
    ce = F.cross_entropy(logits, host_tensor(labels), soft_label=True, reduction="none")
    pick = (ce.reshape([-1]) * host_tensor(w_sum)).sum() / rows.users_share
    at = host_tensor((rows.row.astype(np.int64) * n_cols + col).astype(np.int64))
    rated = paddle.gather(predicted.reshape([-1]), at)
    rating_loss = paddle.square(rated - host_tensor(rows.rating)).sum() / rows.ratings_share
    return pick, rating_loss
