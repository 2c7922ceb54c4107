"""A block of users' top k from a shortlist of columns, without ranking the whole catalogue.

rec.metrics.ranking_metrics ranks every movie a user did not see: it negates the block's
(users x catalogue) scores, partitions each row for its k best (np.argpartition) and
sorts those k. When a model already knows which few columns can hold a row's k best (the
rank stage's candidates; a recall channel's top 100; a baseline whose order is the same
for every user), a `Shortlist` says so, and `shortlist_top` ranks those alone.

The result is the partition's, index for index: where a row's k best are k distinct
values, all of them finite, better than every other shortlisted column and than anything
off the list can score (`ceiling`), they are the only k best and their order the only
order, so any way of finding them gives the same indices. A row where a tie could make
the partition's choice (or its order) depend on numpy's algorithm goes through the plain
path (`dense_top`, on that row's full scores).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass
class Shortlist:
    """A block's scores given by the columns that can be among a row's best: `columns`
    (B, L) (-1: none), `values` (B, L) their scores; every column off a row's list scores
    at most `ceiling` (B,) (-inf: the rest of the row is -inf); `dense(rows)` the full
    (len(rows), catalogue) scores of some rows, for the rows where ties decide."""

    columns: np.ndarray
    values: np.ndarray
    ceiling: np.ndarray
    dense: Callable[[np.ndarray], np.ndarray]


PARTITION_ROWS = 64  # rows per np.argpartition in smallest_k


def smallest_k(a: np.ndarray, k: int, negated: bool = False) -> np.ndarray:
    """np.argpartition(a, k - 1, axis=1)[:, :k] (of -a when `negated`): the same indices in
    the same order, PARTITION_ROWS rows at a time. Each row is partitioned on its own, so
    the rows are the same; numpy's full (rows, columns) int64 index array (32 MB for 1,024
    ml-1m users) and the negated copy are made for a few rows at a time, in the cache."""
    out = np.empty((len(a), k), np.intp)
    for lo in range(0, len(a), PARTITION_ROWS):
        rows = a[lo:lo + PARTITION_ROWS]
        out[lo:lo + PARTITION_ROWS] = np.argpartition(-rows if negated else rows, k - 1,
                                                      axis=1)[:, :k]
    return out


GROUP = 16  # columns per group in dense_top's bound


def smallest_first(a: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(columns, values) of each row's n smallest entries of `a` (B, L), smallest first,
    the first column among equal values; `a` is overwritten. n passes of argmin over all
    the rows at once: for the few best of a few hundred columns, 3x faster than a sort or a
    partition of each row (numpy's per-row cost). Exact where the n values are distinct;
    with ties (or fewer than n finite values) the callers rank the row whole."""
    rows = np.arange(len(a))
    columns = np.empty((len(a), n), np.intp)
    values = np.empty((len(a), n), a.dtype)
    for i in range(n):
        at = a.argmin(axis=1)
        columns[:, i], values[:, i] = at, a[rows, at]
        a[rows, at] = np.inf
    return columns, values


def dense_top(scores: np.ndarray, seen_rows: np.ndarray, seen_columns: np.ndarray,
              k: int) -> np.ndarray:
    """Each row's k best columns, best first, of `scores` (B, M) with the (seen_rows,
    seen_columns) entries left out: ranking_metrics' plain path.

    Ranking every column of a row is not needed. The catalogue is cut into groups of GROUP
    columns (group j: columns j, j + g, j + 2g, ... for g groups, so that each group's best
    is an elementwise minimum of GROUP contiguous slices): a row's k best lie in the k
    groups whose bests are best, as each of them is its group's best or worse, and k
    distinct groups' bests are at least as good as the row's k-th best. Those groups and
    the columns past the last whole group (on ml-1m 175 of 3,883) are ranked alone:
    2.6x faster. A row where that could differ from ranking it whole (a tie among the k
    best or with the next one, a group left out whose best equals the k-th, fewer than k
    finite scores) is ranked whole (full_top), so the indices are full_top's, index for
    index."""
    # the scores negated, in a copy of their own precision (float32 sorts as fast
    # again as float64 and in the same order: widening is exact); negation is
    # exact, so the order is the same as ranking the scores best first
    worst_first = np.negative(scores, dtype=np.result_type(scores, np.float32))
    worst_first[seen_rows, seen_columns] = np.inf  # seen in training: not a candidate
    b, m = worst_first.shape
    groups = m // GROUP
    if groups <= k or b == 0:  # a small catalogue: whole rows
        return full_top(worst_first, k)
    whole = groups * GROUP
    chosen, bests = smallest_first(worst_first[:, :whole].reshape(b, GROUP, groups).min(axis=1),
                                   k + 1)
    bound = bests[:, k]  # no column outside the k chosen groups is better than this
    columns = (chosen[:, :k, None] + groups * np.arange(GROUP)).reshape(b, k * GROUP)
    if whole < m:
        columns = np.concatenate([columns, np.broadcast_to(np.arange(whole, m),
                                                           (b, m - whole))], axis=1)
    at, best = smallest_first(np.take_along_axis(worst_first, columns, 1), k + 1)
    top = np.take_along_axis(columns, at[:, :k], 1)
    kth = best[:, k - 1]
    sure = np.isfinite(kth) & (kth < bound) & (best[:, k] > kth)
    if k > 1:
        sure &= (best[:, 1:k] > best[:, :k - 1]).all(axis=1)
    unsure = np.flatnonzero(~sure)
    if len(unsure):
        top[unsure] = full_top(worst_first[unsure], k)
    return top


def full_top(worst_first: np.ndarray, k: int) -> np.ndarray:
    """Each row's k smallest columns of `worst_first`, smallest first, each row ranked
    whole (np.argpartition, then a sort of its k)."""
    top = smallest_k(worst_first, k)
    return np.take_along_axis(top, np.argsort(np.take_along_axis(worst_first, top, 1), 1), 1)


def shortlist_top(shortlist: Shortlist, seen: np.ndarray, seen_rows: np.ndarray,
                  seen_columns: np.ndarray, k: int) -> np.ndarray:
    """dense_top of the scores `shortlist` stands for, index for index; `seen` (B, M) bool
    is the seen entries, (seen_rows, seen_columns) the same as pairs."""
    columns = shortlist.columns
    b, n = columns.shape
    dtype = np.result_type(shortlist.values, np.float32)
    worst = np.negative(shortlist.values, dtype=dtype)
    off = (columns < 0) | seen[np.arange(b)[:, None], np.maximum(columns, 0)]
    worst[off] = np.inf
    order, best = smallest_first(worst, min(k + 1, n))  # exact where `sure` below
    top = np.take_along_axis(columns, order[:, :k], 1).astype(np.intp)
    if n >= k:
        kth = best[:, k - 1]
        # k distinct finite values, the next shortlisted one worse, and nothing off the
        # list as good (it scores at most the ceiling: at least -ceiling here)
        sure = np.isfinite(kth) & (np.negative(shortlist.ceiling, dtype=dtype) > kth)
        if k > 1:
            sure &= (best[:, 1:k] > best[:, :k - 1]).all(axis=1)
        if n > k:
            sure &= best[:, k] > kth
    else:  # fewer columns than k: the rest of the row decides
        sure = np.zeros(b, bool)
    unsure = np.flatnonzero(~sure)
    if len(unsure) == 0:
        return top
    if n < k:
        top = np.empty((b, k), np.intp)
    # rows where ties decide: numpy's own partition and sort of their full scores
    mine = np.isin(seen_rows, unsure)
    at = np.searchsorted(unsure, seen_rows[mine])
    top[unsure] = dense_top(shortlist.dense(unsure), at, seen_columns[mine], k)
    return top


SHARED_SHORTLIST = 256  # columns of the shortlist of an order every user shares


class SharedOrder:
    """The shortlist of scores that are a row's own constant plus one score per movie, the
    same for every user (the popularity, bias and random baselines): a row's best are
    among the best `length` movies of `values` (M,) unless the user saw most of them."""

    def __init__(self, values: np.ndarray, length: int = SHARED_SHORTLIST):
        self.values = values
        order = np.argsort(-values, kind="stable")
        self.head = order[:length]
        # every movie past the head scores at most the head's last (-inf: there is none)
        self.last = values[order[length - 1]] if length < len(values) else None

    def shortlist(self, n_rows: int, dense: Callable[[np.ndarray], np.ndarray],
                  base: np.ndarray | None = None) -> Shortlist:
        """The Shortlist of base (n_rows, 1) + values (values alone when base is None),
        whose full rows are dense(rows). Adding a row's constant keeps the order (rounding
        is monotonic), so the head's last bounds the rest of each row as it is."""
        head, values = self.head, self.values[self.head][None, :]
        columns = np.broadcast_to(head, (n_rows, len(head)))
        if base is None:
            values = np.broadcast_to(values, (n_rows, len(head)))
            ceiling = np.full(n_rows, -np.inf if self.last is None else self.last)
        else:
            values = base + values  # as base + the full row adds them: the same bits
            ceiling = np.full(n_rows, -np.inf) if self.last is None else \
                (base + self.last)[:, 0]
        return Shortlist(columns, values, ceiling, dense)


def shared_order_scorer(values: np.ndarray, offsets=None):
    """ranking_metrics' score_chunk of the scores offsets(block) (B, 1) + values (M,) (values
    alone without `offsets`), as SharedOrder's Shortlists; the rows where ties decide are
    computed in full as that sum (or values broadcast), the same bits."""
    shared = SharedOrder(values)

    def score_chunk(block: np.ndarray) -> Shortlist:
        base = None if offsets is None else offsets(block)

        def dense(rows: np.ndarray) -> np.ndarray:
            if base is None:
                return np.broadcast_to(values, (len(rows), len(values)))
            return base[rows] + values[None, :]
        return shared.shortlist(len(block), dense, base)
    return score_chunk
