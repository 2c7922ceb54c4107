"""The rank stage's network (组合推荐's second stage): an MLP over each (user, candidate)
feature row (rec.rank.features), one logit per candidate; trained listwise (a softmax over
a user's candidates, rec.rank.training). No file or console I/O."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import paddle
import paddle.nn as nn


@dataclass
class RankerConfig:
    n_features: int
    hidden: tuple = (64, 32)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> "RankerConfig":
        return cls(int(obj["n_features"]), tuple(int(h) for h in obj.get("hidden", (64, 32))))


class Ranker(nn.Layer):
    def __init__(self, c: RankerConfig):
        super().__init__()
        self.config = c
        sizes = [c.n_features, *c.hidden, 1]
        self.layers = nn.LayerList([nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])])

    def forward(self, x):
        """x (B, C, n_features) -> logits (B, C)."""
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = paddle.nn.functional.relu(x)
        return x.squeeze(-1)
