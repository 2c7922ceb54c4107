"""The rank network's forward pass in numpy, from its exported weights (serving never
imports paddle): the same MLP as rec.models.ranker.Ranker, a Linear's weight (in, out)."""

from __future__ import annotations

import numpy as np


class NumpyRanker:
    def __init__(self, params: dict):
        names = sorted({k.rsplit(".", 1)[0] for k in params},
                       key=lambda n: int(n.split(".")[1]))  # layers.0, layers.1, ...
        self.layers = [(np.asarray(params[f"{n}.weight"], np.float32),
                        np.asarray(params[f"{n}.bias"], np.float32)) for n in names]

    @property
    def n_features(self) -> int:
        return self.layers[0][0].shape[0]

    def logits(self, x: np.ndarray) -> np.ndarray:
        """x (B, C, n_features) -> (B, C) float32."""
        shape = x.shape[:-1]
        # one 2-D product per layer: numpy's 3-D matmul loops over the batch in C (100x slower)
        x = np.ascontiguousarray(x, np.float32).reshape(-1, x.shape[-1])
        for i, (w, b) in enumerate(self.layers):
            x = x @ w
            x += b
            if i < len(self.layers) - 1:
                np.maximum(x, 0, out=x)
        return x[:, 0].reshape(shape)
