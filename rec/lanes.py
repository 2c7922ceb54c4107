"""Matrix products whose rows come out the same whoever else is in the product.

BLAS computes a product's rows in tiles, and a row's last bits depend on where in its tile
it sits: with numpy's OpenBLAS (Haswell kernels, on this AVX2 machine) a row of A @ B
came out the same in another product only at a position congruent modulo 12, and a one-row
product went through yet another kernel. So a user's two-tower scores, PureSVD scores and
rank-stage logits changed in their last bits with who was asked beside them: `rec recommend
1832` showed a score of 1.49 where `rec recommend 3519 1832` and `--all` showed 1.491, and
at a near-tie the order could change.

`lane_product(a, b, keys)` gives row i of a @ b the bits of row i computed at a position
congruent to keys[i] modulo LANES in a product of whole tiles: the rows are placed in a
zero-padded matrix, each at such a position (rows of one lane one LANES further on each),
and read back. Keys are what a row is (a user's catalogue row; a candidate's user and
movie), so a row's bits are a function of its contents and its key alone. LANES is a
multiple of every tile height OpenBLAS's sgemm kernels use (8 to 96 rows; 12 here, 24 on
the EPYC of rec.rank.forward's measurements). Consecutive keys that start and end on a
multiple of LANES (`--all`'s chunks of users) are placed as they are: no copy, the same
product as before. No product is taller than a block of rows (memory bounded whatever the
keys). The bits are one BLAS thread's (recommend and evaluate set it): several threads
split a tall product differently. Pure numpy.
"""

from __future__ import annotations

import numpy as np

LANES = 96


def whole_lanes(n: int) -> int:
    """n rounded down to a multiple of LANES (n itself below LANES): chunks of consecutive
    users of that size, from 0, are placed as they are."""
    return n - n % LANES if n >= LANES else n


class LaneLayout:
    """Where each of n rows with these keys goes in a padded matrix of `height` rows (a
    multiple of LANES): `at`, a slice for consecutive keys, else an index array."""

    def __init__(self, keys: np.ndarray):
        keys = np.asarray(keys, np.int64)
        n = len(keys)
        first = int(keys[0]) if n else 0
        if n == 0 or (int(keys[-1]) - first == n - 1 and (np.diff(keys) == 1).all()):
            front = first % LANES  # consecutive keys: one block, padded at both ends
            self.at = slice(front, front + n)
            self.height = -(-(front + n) // LANES) * LANES
            self.plain = front == 0 and self.height == n
            return
        lane = (keys % LANES).astype(np.uint8)  # a radix sort: ~0.5 ms per 100k rows
        order = np.argsort(lane, kind="stable")
        counts = np.bincount(lane, minlength=LANES)
        rank = np.empty(n, np.int64)
        rank[order] = np.arange(n) - (np.cumsum(counts) - counts)[lane[order]]
        self.at = lane + LANES * rank  # rows of one lane one LANES further on each
        self.height = LANES * int(counts.max())
        self.plain = False

    def place(self, a: np.ndarray) -> np.ndarray:
        """`a`'s rows at their places in a zero-padded (height, ...) matrix (`a` itself
        when that is where they are)."""
        if self.plain:
            return a
        padded = np.zeros((self.height, *a.shape[1:]), a.dtype)
        padded[self.at] = a
        return padded

    def take(self, out: np.ndarray) -> np.ndarray:
        """The rows of a result over the padded matrix, back in the keys' order."""
        return out if self.plain else out[self.at]


def lane_product(a: np.ndarray, b: np.ndarray, keys: np.ndarray | None) -> np.ndarray:
    """a @ b (2-D), row i computed at a position congruent to keys[i] (non-negative
    integers) modulo LANES; keys None: the plain product."""
    if keys is None:
        return a @ b
    layout = LaneLayout(keys)
    # never a product taller than `block` rows (a multiple of LANES): a lane holding many of
    # the rows (users asked at a stride of 96) made it up to LANES times the rows, the
    # memory of as many score rows, and past ~3,900 rows x 3,883 movies OpenBLAS split the
    # work otherwise, and the bits changed
    block = max(LANES, whole_lanes(min(10 * LANES, (1 << 23) // max(b.shape[1], 1))))
    if layout.height <= block:
        return layout.take(layout.place(a) @ b)
    at = np.arange(layout.at.start, layout.at.stop) if isinstance(layout.at, slice) else \
        layout.at
    out = np.empty((len(a), b.shape[1]), np.result_type(a, b))
    for lo in range(0, layout.height, block):
        rows = np.flatnonzero((at >= lo) & (at < lo + block))
        if len(rows):
            padded = np.zeros((min(block, layout.height - lo), a.shape[1]), a.dtype)
            padded[at[rows] - lo] = a[rows]
            out[rows] = (padded @ b)[at[rows] - lo]
    return out
