"""One training step of the recall-rank objective over the whole catalogue (imports paddle),
and what both steps (this one and rec.twotower.sampled's) start from: the users' rows with
the history dropout already drawn (StepRows), the step's numpy side built from them
(StepArrays: bags, soft labels, indices) and StepFeed, which builds the next step's numpy
side in a thread while Paddle runs the current one.

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

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator

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


@dataclass
class StepArrays:
    """A step's numpy side, built before Paddle runs the step (StepFeed builds the next
    step's while Paddle runs this one): the user tower's inputs (demographics, watched,
    rated), the pick loss's soft labels (B, C) and each user's weight sum, `at` (each of the
    step's ratings as a flat index into the (B, C) matrices); for a sampled step also its
    candidate movies (`columns`) and their log Q."""

    rows: StepRows
    tower: tuple
    labels: np.ndarray
    w_sum: np.ndarray
    at: np.ndarray
    offset: float = 0.0  # the global mean, which the network's centred ratings leave out
    columns: np.ndarray | None = None
    log_q: np.ndarray | None = None


class StepFeed:
    """The StepArrays of an epoch's steps 0..n-1, in order: build(b) -> step b's arrays, or
    None to end the epoch there. With `ahead`, a thread builds step b + 1's while the caller
    runs step b (numpy and Paddle release the GIL in their loops, so the two share the
    cores): 10-12 ms of an ml-1m step's 105 (the batch, its bags and soft labels) off the
    critical path when a core is free. Steps are built one at a time and in order, so the
    epoch's generators draw what they would draw inline: the same steps. Without `ahead`
    (one math thread: --threads 1 asks for one core) each is built when it is needed."""

    def __init__(self, build: Callable[[int], "StepArrays | None"], n: int, ahead: bool):
        self.build, self.n, self.ahead = build, n, ahead

    def __iter__(self) -> Iterator["StepArrays"]:
        if not self.ahead:
            for b in range(self.n):
                arrays = self.build(b)
                if arrays is None:
                    return
                yield arrays
            return
        with ThreadPoolExecutor(1) as pool:
            coming = pool.submit(self.build, 0) if self.n else None
            for b in range(self.n):
                arrays = coming.result()
                if arrays is None:
                    return
                coming = pool.submit(self.build, b + 1) if b + 1 < self.n else None
                yield arrays


def full_arrays(hist, rows: StepRows, disliked_weight: float) -> StepArrays:
    """The numpy side of a step over the whole catalogue."""
    watched, rated = rows.bags(None, hist.n_movies, hist.mean)
    return StepArrays(rows, (hist.demographics[rows.users], watched, rated),
                      *loss_targets(rows, rows.movie, hist.n_movies, disliked_weight),
                      offset=hist.mean)


def loss_targets(rows: StepRows, col: np.ndarray, n_cols: int, disliked_weight: float) -> tuple:
    """(soft labels, weight sums, at) of the step's ratings, which sit at (rows.row, col)
    of the (B, n_cols) matrices."""
    w = np.where(rows.rating >= RELEVANT, 1.0, disliked_weight).astype(np.float32)
    w_sum = np.bincount(rows.row, w, minlength=len(rows.users)).astype(np.float32)
    labels = np.zeros((len(rows.users), n_cols), np.float32)
    labels[rows.row, col] = w / np.maximum(w_sum, 1e-12)[rows.row]
    return labels, w_sum, (rows.row.astype(np.int64) * n_cols + col).astype(np.int64)


def full_losses(train_net, movies, arrays: StepArrays) -> tuple:
    """(pick loss, rating loss) of one step over the whole catalogue (see the docstring)."""
    logits, centred = train_net(*map(host_tensor, arrays.tower), *movies.all(), centred=True)
    return pick_and_rating_losses(logits, centred, arrays)


def pick_and_rating_losses(logits, centred, arrays: StepArrays) -> tuple:
    """The two losses from the (B, C) pick logits and predicted ratings less the global
    mean (`centred`: the mean is added to the rated entries alone, the same numbers)."""
    rows = arrays.rows
    ce = F.cross_entropy(logits, host_tensor(arrays.labels), soft_label=True, reduction="none")
    pick = (ce.reshape([-1]) * host_tensor(arrays.w_sum)).sum() / rows.users_share
    rated = arrays.offset + paddle.gather(centred.reshape([-1]), host_tensor(arrays.at))
    rating_loss = paddle.square(rated - host_tensor(rows.rating)).sum() / rows.ratings_share
    return pick, rating_loss
