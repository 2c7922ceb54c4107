"""The CTR networks' forward pass in numpy, from their exported weights.

`rec ctr-predict` and ctr-train's rerank comparison must not import paddle, so ctr-train exports
the trained network's weights to output/ctr/model/weights.npz (checked against paddle before
it is written) and `NumpyCtr` computes the same click probabilities from them.
"""

from __future__ import annotations

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return (1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))).astype(np.float32)


class NumpyCtr:
    """The CTR networks of rec/models/ctr.py, forward only, from their exported weights
    (the paddle state_dict's names and shapes: a Linear's weight is (in, out))."""

    def __init__(self, config: dict, params: dict):
        self.c = config
        self.p = {k: np.asarray(v, dtype=np.float32) for k, v in params.items()}
        slots = list(config["slot_fields"])
        self.pool = None
        if slots != list(range(len(slots))):
            pool = np.zeros((max(slots) + 1, len(slots)), np.float32)
            pool[np.asarray(slots), np.arange(len(slots))] = 1.0
            self.pool = pool

    @classmethod
    def load(cls, npz_path, config: dict) -> "NumpyCtr":
        with np.load(npz_path, allow_pickle=False) as z:
            return cls(config, {k: z[k] for k in z.files})

    def _first_order(self, prefix, ids, weights, dense, cross, cross_weights):
        p = self.p
        w = p[prefix + "id_weight.weight"][ids, 0]
        if weights is not None:
            w = w * weights
        out = w.sum(axis=1) + p[prefix + "bias"][0]
        if dense is not None and prefix + "dense_weight" in p:
            out = out + (dense @ p[prefix + "dense_weight"])[:, 0]
        if cross is not None and prefix + "cross_weight.weight" in p:
            x = p[prefix + "cross_weight.weight"][cross, 0]
            if cross_weights is not None:
                x = x * cross_weights
            out = out + x.sum(axis=1)
        return out

    def _fields(self, ids, weights):
        e = self.p["fields.emb.weight"][ids]  # (B, S, k)
        if weights is not None:
            e = e * weights[..., None]
        if self.pool is not None:
            e = np.matmul(self.pool, e)  # (F, S) @ (B, S, k): 6x faster than einsum's loop
        return e

    def _mlp(self, v, dense):
        p = self.p
        h = v.reshape(len(v), -1) @ p["deep.first.weight"] + p["deep.first.bias"]
        if dense is not None and "deep.first_dense.weight" in p:
            h = h + dense @ p["deep.first_dense.weight"]
        h = np.maximum(h, 0)
        i = 0
        while f"deep.hidden.{i}.weight" in p:
            h = np.maximum(h @ p[f"deep.hidden.{i}.weight"] + p[f"deep.hidden.{i}.bias"], 0)
            i += 1
        return (h @ p["deep.out.weight"] + p["deep.out.bias"])[:, 0]

    def logits(self, ids, weights=None, dense=None, cross=None, cross_weights=None) -> np.ndarray:
        model = self.c["model"]
        if dense is not None and dense.shape[1] == 0:
            dense = None
        if model == "lr":
            return self._first_order("linear.", ids, weights, dense, cross, cross_weights)
        if model == "wide_deep":
            v = self._fields(ids, weights)
            return (self._first_order("wide.", ids, weights, dense, cross, cross_weights)
                    + self._mlp(v, dense))
        if model == "deepfm":
            v = self._fields(ids, weights)
            total, squares = v.sum(axis=1), (v * v).sum(axis=1)
            if dense is not None and "dense_emb" in self.p:
                dv = dense[..., None] * self.p["dense_emb"]
                total, squares = total + dv.sum(axis=1), squares + (dv * dv).sum(axis=1)
            fm = 0.5 * (total * total - squares).sum(axis=1)
            return (self._first_order("linear.", ids, weights, dense, cross, cross_weights)
                    + fm + self._mlp(v, dense))
        raise ValueError(f"unknown CTR model {model!r}")

    def probabilities(self, batch: int = 65536, **inputs) -> np.ndarray:
        n = len(inputs["ids"])
        out = [sigmoid(self.logits(**{k: v[i: i + batch] for k, v in inputs.items()}))
               for i in range(0, n, batch)]
        return np.concatenate(out) if out else np.zeros(0, np.float32)
