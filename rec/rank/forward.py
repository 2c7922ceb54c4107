"""The rank network's forward pass in numpy, from its exported weights (serving never
imports paddle): the same MLP as rec.models.ranker.Ranker, a Linear's weight (in, out).

Rows go through FORWARD_ROWS at a time: a block's hidden layers (2 MB) stay in the cache,
where all of them at once were 230 MB for 1,024 ml-1m users (2-3x slower, memory-bound).
BLAS computes each row of a product from tiles of rows: a block that starts at a multiple
of the tile height gives every row the same bits as one product over all the rows, and
FORWARD_ROWS is a multiple of every sgemm tile height OpenBLAS uses (8 to 96 rows; 24 on
the 2-core EPYC, where 8,176-row blocks changed the last bits and 8,184 did not), and of
rec.lanes.LANES: with keys, the rows are laid out in lanes first, and the blocks keep them.
"""

from __future__ import annotations

import numpy as np

from rec.lanes import LaneLayout

FORWARD_ROWS = 4032  # 2^6 x 3^2 x 7 rows per block


class NumpyRanker:
    def __init__(self, params: dict):
        names = sorted({k.rsplit(".", 1)[0] for k in params},
                       key=lambda n: int(n.split(".")[1]))  # layers.0, layers.1, ...
        self.layers = [(np.asarray(params[f"{n}.weight"], np.float32),
                        np.asarray(params[f"{n}.bias"], np.float32)) for n in names]

    def all_finite(self) -> bool:
        """Whether every weight and bias is a finite number."""
        return all(np.isfinite(w).all() and np.isfinite(b).all() for w, b in self.layers)

    @property
    def n_features(self) -> int:
        return self.layers[0][0].shape[0]

    def logits(self, x: np.ndarray, keys=None) -> np.ndarray:
        """x (B, C, n_features) -> (B, C) float32. `keys` (B * C,): each row's key, whose
        lane it is computed in (rec.lanes.LaneLayout: its bits its own, wherever it sits
        in x); None: the rows where they are."""
        shape = x.shape[:-1]
        # one 2-D product per layer: numpy's 3-D matmul loops over the batch in C (100x slower)
        x = np.ascontiguousarray(x, np.float32).reshape(-1, x.shape[-1])
        layout = LaneLayout(keys) if keys is not None else None
        if layout is not None:
            x = layout.place(x)  # FORWARD_ROWS is a multiple of LANES: lanes kept
        out = np.empty(len(x), np.float32)
        for lo in range(0, len(x), FORWARD_ROWS):
            out[lo:lo + FORWARD_ROWS] = self._forward(x[lo:lo + FORWARD_ROWS])
        return (layout.take(out) if layout is not None else out).reshape(shape)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        for i, (w, b) in enumerate(self.layers):
            x = x @ w
            x += b
            if i < len(self.layers) - 1:
                np.maximum(x, 0, out=x)
        return x[:, 0]
