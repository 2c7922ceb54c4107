"""Click-through-rate networks: Wide&Deep, DeepFM and the logistic-regression baseline.

Every model reads the same inputs, whatever the data source:

    ids      int (B, S)     slots: ids in one shared id space (per-field offsets, or hashed;
                            int32 where the id space allows: MovieLens)
    weights  float32 (B, S) each slot's weight, or None (all 1). A multi-valued field (a
                            movie's genres) spans several slots with weights 1/count, and
                            padding slots weigh 0: the field's embedding is the mean of its
                            values' embeddings ("pooled field")
    dense    float32 (B, D) numeric features (Criteo's log counts), or None when D = 0
    cross    int (B, C)     optional wide-only ids (e.g. user x genre), with cross_weights

`CtrConfig.slot_fields` says which field each slot belongs to; the field embeddings are
(B, F, k). When every field is one slot (Criteo) the pooling is skipped; otherwise it is one
batched matmul with a fixed (F, S) 0/1 matrix (fast forward and backward on CPU, unlike
slicing and concatenating float tensors).

    first order    sum of per-id weights (+ per-cross weights) + w . dense + b
    LogisticRegression = first order
    WideDeep       first order (the wide part) + MLP(field embeddings, dense)
    DeepFM         first order + FM(field embeddings, dense embeddings) + MLP(same)

FM is the usual 0.5 * sum_k ((sum_f v_fk)^2 - sum_f v_fk^2), with each dense feature a field
whose embedding is scaled by its value. The MLP's first layer is two matmuls added (sparse
part, dense part) instead of a concat. All models return logits of shape (B,).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

MODELS = ("wide_deep", "deepfm")
EMB_STD = 0.01


@dataclass
class CtrConfig:
    model: str  # wide_deep | deepfm | lr
    n_ids: int  # rows of the shared id space
    slot_fields: list = field(default_factory=list)  # field index of each slot (len S)
    n_dense: int = 0
    n_cross: int = 0  # rows of the wide-only cross id space (0 = none)
    emb_dim: int = 16
    hidden: tuple = (128, 64)
    dropout: float = 0.0

    @property
    def n_slots(self) -> int:
        return len(self.slot_fields)

    @property
    def n_fields(self) -> int:
        return max(self.slot_fields) + 1 if self.slot_fields else 0

    @property
    def pooled(self) -> bool:
        """True when some field spans several slots (else slots are fields, in order)."""
        return list(self.slot_fields) != list(range(self.n_slots))

    def to_json(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_json(cls, obj: dict) -> "CtrConfig":
        obj = dict(obj)
        obj["hidden"] = tuple(obj.get("hidden", (128, 64)))
        obj["slot_fields"] = list(obj["slot_fields"])
        return cls(**obj)


def _normal(std: float) -> paddle.ParamAttr:
    return paddle.ParamAttr(initializer=nn.initializer.Normal(0.0, std))


def _zeros() -> paddle.ParamAttr:
    return paddle.ParamAttr(initializer=nn.initializer.Constant(0.0))


class FirstOrder(nn.Layer):
    """The linear part: one weight per id (and per cross id), one per dense feature, a bias."""

    def __init__(self, c: CtrConfig):
        super().__init__()
        self.id_weight = nn.Embedding(c.n_ids, 1, weight_attr=_zeros())
        self.bias = self.create_parameter([1], default_initializer=nn.initializer.Constant(0.0))
        self.dense_weight = (self.create_parameter([c.n_dense, 1], default_initializer=nn.initializer.Constant(0.0))
                             if c.n_dense else None)
        self.cross_weight = nn.Embedding(c.n_cross, 1, weight_attr=_zeros()) if c.n_cross else None

    def forward(self, ids, weights=None, dense=None, cross=None, cross_weights=None):
        w = self.id_weight(ids).squeeze(-1)  # (B, S)
        if weights is not None:
            w = w * weights
        out = w.sum(axis=1) + self.bias
        if self.dense_weight is not None and dense is not None:
            out = out + paddle.matmul(dense, self.dense_weight).squeeze(-1)
        if self.cross_weight is not None and cross is not None:
            x = self.cross_weight(cross).squeeze(-1)
            if cross_weights is not None:
                x = x * cross_weights
            out = out + x.sum(axis=1)
        return out


class FieldEmbedding(nn.Layer):
    """Slots -> field embeddings (B, F, k): lookup, weight, pool the slots of each field."""

    def __init__(self, c: CtrConfig):
        super().__init__()
        self.emb = nn.Embedding(c.n_ids, c.emb_dim, weight_attr=_normal(EMB_STD))
        self.pooled = c.pooled
        if self.pooled:
            pool = np.zeros((c.n_fields, c.n_slots), dtype=np.float32)
            pool[np.asarray(c.slot_fields), np.arange(c.n_slots)] = 1.0
            self.register_buffer("pool", paddle.to_tensor(pool), persistable=False)

    def forward(self, ids, weights=None):
        e = self.emb(ids)  # (B, S, k)
        if weights is not None:
            e = e * weights.unsqueeze(-1)
        if self.pooled:
            e = paddle.matmul(self.pool, e)  # (F, S) @ (B, S, k) -> (B, F, k)
        return e


class MLP(nn.Layer):
    """Field embeddings (flattened) and dense features -> hidden ReLU layers -> one logit."""

    def __init__(self, c: CtrConfig):
        super().__init__()
        width = c.n_fields * c.emb_dim
        self.first = nn.Linear(width, c.hidden[0])
        self.first_dense = nn.Linear(c.n_dense, c.hidden[0], bias_attr=False) if c.n_dense else None
        self.hidden = nn.LayerList([nn.Linear(a, b) for a, b in zip(c.hidden[:-1], c.hidden[1:])])
        self.out = nn.Linear(c.hidden[-1], 1)
        self.dropout = nn.Dropout(c.dropout) if c.dropout > 0 else None

    def forward(self, fields, dense=None):
        b = fields.shape[0]
        h = self.first(fields.reshape([b, -1]))
        if self.first_dense is not None and dense is not None:
            h = h + self.first_dense(dense)
        h = F.relu(h)
        for layer in self.hidden:
            if self.dropout is not None:
                h = self.dropout(h)
            h = F.relu(layer(h))
        return self.out(h).squeeze(-1)


class LogisticRegression(nn.Layer):
    """The baseline: the first-order part alone, over the same features."""

    def __init__(self, c: CtrConfig):
        super().__init__()
        self.config = c
        self.linear = FirstOrder(c)

    def forward(self, ids, weights=None, dense=None, cross=None, cross_weights=None):
        return self.linear(ids, weights, dense, cross, cross_weights)


class WideDeep(nn.Layer):
    """Wide (first order, with the cross ids) + deep (MLP over the field embeddings)."""

    def __init__(self, c: CtrConfig):
        super().__init__()
        self.config = c
        self.wide = FirstOrder(c)
        self.fields = FieldEmbedding(c)
        self.deep = MLP(c)

    def forward(self, ids, weights=None, dense=None, cross=None, cross_weights=None):
        v = self.fields(ids, weights)
        return self.wide(ids, weights, dense, cross, cross_weights) + self.deep(v, dense)


class DeepFM(LogisticRegression):
    """First order (the baseline's) + factorisation machine + MLP, the FM and the MLP sharing
    embeddings."""

    def __init__(self, c: CtrConfig):
        super().__init__(c)  # config and the first-order part, `linear`
        self.fields = FieldEmbedding(c)
        self.dense_emb = (self.create_parameter([c.n_dense, c.emb_dim],
                                                default_initializer=nn.initializer.Normal(0.0, EMB_STD))
                          if c.n_dense else None)
        self.deep = MLP(c)

    def forward(self, ids, weights=None, dense=None, cross=None, cross_weights=None):
        v = self.fields(ids, weights)  # (B, F, k)
        total, squares = v.sum(axis=1), (v * v).sum(axis=1)
        if self.dense_emb is not None and dense is not None:
            dv = dense.unsqueeze(-1) * self.dense_emb  # (B, D, k)
            total = total + dv.sum(axis=1)
            squares = squares + (dv * dv).sum(axis=1)
        fm = 0.5 * (total * total - squares).sum(axis=1)
        return super().forward(ids, weights, dense, cross, cross_weights) + fm + self.deep(v, dense)


def build(c: CtrConfig) -> nn.Layer:
    if c.model == "wide_deep":
        return WideDeep(c)
    if c.model == "deepfm":
        return DeepFM(c)
    if c.model == "lr":
        return LogisticRegression(c)
    raise ValueError(f"unknown CTR model {c.model!r}")
