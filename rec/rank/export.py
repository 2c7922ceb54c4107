"""The rank stage as a servable network (imports paddle): its input is the candidates'
feature rows (rec.rank.features: the recall channels' scores, ranks and the rest, built in
numpy from output/features and output/dataset), its output one rank logit per candidate;
verified on the real candidates of the dataset's first users against the numpy forward
pass `rec recommend` serves with.
"""

from __future__ import annotations

import io

import numpy as np

from rec.errors import UsageError
from rec.engine.inference import Network

import paddle  # noqa: E402

CHECK_USERS = 32


def network(paths, ds, features) -> Network:
    from rec.models.ranker import Ranker, RankerConfig
    from rec.rank.features import POPULARITY, TWO_TOWER_Z, known_block
    from rec.rank.serving import RUN, load_ranker, serving_stack
    from rec.storage import unit

    if features is None:
        raise UsageError(f"exporting the rank stage needs output/features: run `rec "
                         f"save-features` and `{RUN}`")
    model = load_ranker(paths, features, ds)
    stack = serving_stack(features, ds, model.k, scale_k=model.scale_k)
    block = known_block(ds, features.users, np.arange(min(CHECK_USERS, ds.n_users)))
    cand, by, scores = stack.candidates(block)
    x = stack.features(block, cand, by, scores)
    net = Ranker(RankerConfig.from_json(model.config["model"]))
    state = unit.read(paths.ctr.best, RUN, lambda s: s.read_bytes(paths.ctr.params.name))
    net.set_state_dict(paddle.load(io.BytesIO(state)))
    net.eval()
    expected = model.net.logits(x.copy())  # padding rows too: what the network computes
    about = {"model": "rank", "features": model.config["features"],
             "how_to_build_inputs": "rec.rank.features.Stack.features over the candidates of "
             "Stack.candidates (the union of each recall channel's top features.k; the log "
             "ranks scaled by log(4 x features.scale_k)); padding rows are zeros",
             "order": {"popularity_penalty": model.penalty, "popularity_column": POPULARITY,
                       "two_tower_blend": model.blend, "two_tower_column": TWO_TOWER_Z,
                       "how": "candidates are shown by the logit less popularity_penalty "
                              "times their features[..., popularity_column], plus "
                              "two_tower_blend times their features[..., two_tower_column]"}}
    return Network("rank", _Logits(net), [("features", "float32", [None, None, x.shape[2]])],
                   "rank logits, one per candidate", [x],
                   {"the numpy forward pass rec recommend serves": expected}, about)


class _Logits(paddle.nn.Layer):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, features):
        return self.net(features)
