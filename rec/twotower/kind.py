"""What a two-tower model kind (a value of `rec train --match`) declares: the one contract
between the stages and the kinds. rec.twotower.kinds lists them by name.

A kind is one object, declared in the module of its family (rec.twotower.recall_rank,
rec.twotower.rating). Its fields are plain data that the command line reads without paddle
(`rec --help`, `rec recommend`, `rec pipeline`'s checks); its methods build, train, load and
export its network, and import paddle when they are called.

    name         its --match value and scoring.json's "match" (rec.scoring scores by it)
    help         a few words for --match's help
    auto         what `rec train` fills in for the options left at auto (resolve_auto)
    monitor      the tuning metric that picks the best epoch: (metric, bigger is better,
                 label, state key), rec.engine.trainer.Monitor's arguments
    columns      the live table's columns {metric: heading}
    finite       the metrics that must stay finite; keys: those of the run's summary
    recalls      its vectors give recall logits besides the stars (scoring.json's "split"),
                 and the rank stage stacks on them; otherwise they predict stars only
    folds_in     its user tower reads the user's ratings, not an id: it serves any user,
                 a new one (`rec recommend --like`) or a held-out one (--split users)
    formulas     export.json's lines on how its saved vectors score
    user_inputs  export.json's line on how to build its user tower's inputs
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Auto:
    """The values of `rec train`'s options left at auto (0, or -1 for --dropout)."""

    patience: int
    lr: float
    epochs: int
    tower_dim: int
    dropout: float


# The gradients' global norm is clipped to this (the dense models). On ml-100k (64 users a
# step) the rating loss swung from 0.96 to 3.9 between epochs at the default lr and the
# best epoch's tuning RMSE was 1.04, worse than the bias baseline; clipped at 5: 0.93, the
# tuning NDCG@10 the same (0.2275 against 0.2289); ml-1m's tuning NDCG@10 and RMSE 0.2156 /
# 0.8584 against 0.2152 / 0.8591; ml-latest-small 0.1982 / 0.912 against 0.1915 / 0.893.
# Each on the tuning slice (rec.datasets.tuning), 1 and 20 tried on ml-100k too.
GRAD_CLIP = 5.0


@dataclass(frozen=True)
class Kind:
    name: str
    help: str
    auto: Auto
    monitor: tuple[str, bool, str, str]
    columns: dict[str, str]
    finite: tuple[str, ...]
    keys: tuple[str, ...]
    recalls: bool
    folds_in: bool
    formulas: tuple[str, ...]
    user_inputs: str

    def resolve_auto(self, params, n_train: int, n_users: int, n_movies: int) -> None:
        """Fill in `params`' options (rec.stages.train.TrainParams) left at auto."""
        auto = self.auto
        if params.patience == 0:
            params.patience = auto.patience
        if params.lr == 0:
            params.lr = auto.lr
        if params.epochs == 0:
            params.epochs = auto.epochs
        if params.tower_dim == 0:
            params.tower_dim = auto.tower_dim
        if params.dropout == -1.0:
            params.dropout = auto.dropout
        if params.batch_size == 0:
            params.batch_size = self.batch_size(n_train, n_users, n_movies)

    def optimizer(self, net, config, lr: float, weight_decay: float):
        """Adam over `net`: lazy (row-sparse updates) when the config asks for sparse
        embeddings, else AdamW with `weight_decay` (imports paddle)."""
        import paddle

        if getattr(config, "sparse_embeddings", False):  # AdamW with no weight decay is Adam
            return paddle.optimizer.Adam(learning_rate=lr, parameters=net.parameters(),
                                         lazy_mode=True)
        return paddle.optimizer.AdamW(learning_rate=lr, parameters=net.parameters(),
                                      weight_decay=weight_decay,
                                      grad_clip=paddle.nn.ClipGradByGlobalNorm(GRAD_CLIP))

    # --- what each kind implements --------------------------------------------------------

    def batch_size(self, n_train: int, n_users: int, n_movies: int) -> int:
        """--batch-size's auto value for a dataset of these sizes."""
        raise NotImplementedError

    def model_config(self, ds, train_mean: float, params):
        """The network's config (with to_json) from the dataset and the resolved params."""
        raise NotImplementedError

    def network(self, config):
        """A fresh network of `config` (imports paddle)."""
        raise NotImplementedError

    def saved_network(self, model_json: dict):
        """The network that config.json's "model" describes, weights not loaded."""
        raise NotImplementedError

    def objective(self, net, optimizer, ds, batch_size: int, config: dict):
        """The rec.engine.trainer.Objective that trains `net`; its save_best(epoch, folder)
        writes the weights with config.json (`config`) into the folder fit hands it."""
        raise NotImplementedError

    def saved_vectors(self, model, ds) -> tuple:
        """(user vectors, movie vectors, scoring) of the trained `model`: what save-features
        writes and evaluate ranks by."""
        raise NotImplementedError

    def vector_mismatch(self, model, ds, user_vecs, movie_vecs, scoring: dict, users,
                        movies) -> float:
        """The largest difference between the network's own outputs on (users[i],
        movies[i]) pairs and what rec.scoring computes from the saved vectors."""
        raise NotImplementedError

    def check_scoring(self, scoring: dict, dim: int) -> None:
        """Raise (AssertionError, KeyError, ValueError, TypeError) unless `scoring` is a
        valid scoring.json of this kind for vectors of `dim` components."""
        raise NotImplementedError

    def user_tower(self, model, ds, users) -> tuple:
        """(the servable user tower, its input specs, its inputs for `users` as numpy) for
        rec export (rec.twotower.export)."""
        raise NotImplementedError

    def fold_in_file(self, model) -> dict[str, bytes]:
        """The files save-features writes beside the vectors for new users ({} if none)."""
        return {}
