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
        for i, (w, b) in enumerate(self.layers):
            x = x @ w + b
            if i < len(self.layers) - 1:
                np.maximum(x, 0, out=x)
        return x[..., 0]
