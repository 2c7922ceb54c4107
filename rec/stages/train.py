"""`rec train`: fit the two-tower on the saved train split.

By default (`--match softmax`) the recall-then-rank two-tower (rec/models/recall_rank.py):
a softmax over the catalogue learns which movies a user picks, a rating head how much they
will like them; the best epoch is the one with the best validation NDCG@10 of the final
order. `--match dot` / `cosine` train the course's pure rating model (best tune RMSE).

Every epoch ends with a validation pass (RMSE, MAE) and a checkpoint of everything needed to
continue (weights, optimizer state, epoch, history), swapped in atomically: Ctrl-C keeps the
last complete checkpoint and `--resume` continues from it. The best epoch's weights are kept
in output/model/model.pdparams beside config.json, which rebuilds the network alone.

Reproducible: the shuffle and the dropout masks of epoch e depend only on (seed, e), so a
resumed run retraces an uninterrupted one exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import typer

from rec import __version__

from rec.storage import manifest
from rec.results import emit_object
from rec.datasets.contract import dataset_identity, dataset_paths, load_dataset
from rec.errors import UsageError
from rec.paths import OPTIMIZER, PARAMS, require
from rec.stages import get_paths, stage
from rec.stages.options import (SEED_RANGE, TRAINING, Device, Format, Nproc, Resume,
                                Threads, positive, resumed_params)

Option = typer.Option
HELP = ("Train the two-tower: recall (softmax over the catalogue) + a rating head by default "
        "(checkpoints each epoch, early stopping, --resume).")


@dataclass
class TrainParams:
    """The run's parameters: each field is its command-line option (see rec.stages.stage)."""

    epochs: Annotated[int, Option(
        "--epochs", min=0, rich_help_panel=TRAINING,
        help="Epochs in total; 0 = auto (20 for softmax, 10 for dot and cosine).")] = 0
    batch_size: Annotated[int, Option(
        "--batch-size", min=0, rich_help_panel=TRAINING,
        help="Users per step (softmax) or ratings per step (dot, cosine); 0 = auto.")] = 0
    lr: Annotated[float, Option(
        "--lr", rich_help_panel=TRAINING, help="Adam learning rate; 0 = auto (0.01 for "
        "softmax, decaying each epoch; 0.005 for dot and cosine).")] = 0.0
    weight_decay: Annotated[float, Option(
        "--weight-decay", rich_help_panel=TRAINING, help="AdamW's weight decay.")] = 0.0
    seed: Annotated[int, Option(
        "--seed", **SEED_RANGE, rich_help_panel=TRAINING,
        help="Fixes initialisation, shuffling, dropout.")] = 42
    patience: Annotated[int, Option(
        "--patience", min=0, rich_help_panel=TRAINING,
        help="Stop after this many epochs without a better tune NDCG@10 (softmax) or tune RMSE "
        "(dot, cosine); 0 = auto (5 for softmax, 3 for dot and cosine).")] = 0
    match: Annotated[str, Option(
        "--match", rich_help_panel=TRAINING, help="softmax (recall + rating head), dot "
        "(mean + u.m + biases) or cosine (the course's 5*cos).")] = "softmax"
    tower_dim: Annotated[int, Option(
        "--tower-dim", min=0, rich_help_panel=TRAINING,
        help="0 = auto (64 for softmax, 32 for dot and cosine).")] = 0
    select: Annotated[str, Option(
        "--select", rich_help_panel=TRAINING, help="best (the epoch the tuning slice "
        "prefers, with early stopping) or last (exactly --epochs epochs).")] = "best"
    dropout: Annotated[float, Option(
        "--dropout", min=-1.0, max=0.9, rich_help_panel=TRAINING,
        help="-1 = auto (0.5 of the history for softmax, 0.1 for dot and cosine).")] = -1.0

    def check(self) -> None:
        if self.select not in ("best", "last"):
            raise UsageError(f"unknown --select {self.select!r}: choose best or last")
        if self.match not in MATCHES:
            raise UsageError(f"unknown --match {self.match!r}: choose softmax, dot or cosine")
        if self.dropout != -1.0 and not 0 <= self.dropout <= 0.9:
            raise UsageError(f"--dropout must be -1 (auto) or in 0..0.9 (got {self.dropout})")
        if self.lr != 0:
            positive("--lr", self.lr)
        if not 0 <= self.weight_decay < float("inf"):
            raise UsageError(f"--weight-decay must be a non-negative number (got {self.weight_decay})")


MATCHES = ("softmax", "dot", "cosine")


def resolve_auto(params: TrainParams, n_train: int, n_users: int, large: bool = False) -> None:
    """Fill in the options left at 'auto' for the chosen match (`large`: a catalogue the
    softmax model samples, rec.twotower.sampled, where a step's candidates grow with the
    batch: at most LARGE_USER_BATCH users)."""
    softmax = params.match == "softmax"
    if params.patience == 0:
        params.patience = 5 if softmax else 3
    if params.lr == 0:
        params.lr = 1e-2 if softmax else 5e-3
    if params.epochs == 0:
        params.epochs = 20 if softmax else 10
    if params.tower_dim == 0:
        params.tower_dim = 64 if softmax else 32
    if params.dropout == -1.0:
        params.dropout = 0.5 if softmax else 0.1
    if params.batch_size == 0:
        params.batch_size = auto_user_batch(n_users) if softmax else auto_batch_size(n_train)
        if softmax and large:
            params.batch_size = min(params.batch_size, LARGE_USER_BATCH)


LARGE_USER_BATCH = 128  # measured on 62k movies: 512 users a step hold ~1 GiB of candidates


def auto_user_batch(n_users: int) -> int:
    """Users per step of the softmax model: the largest power of two <= n_users / 8 within
    [32, 512] (ml-1m gets 512, 12 steps an epoch; a 600-user dataset 64)."""
    size = 32
    while size * 2 <= min(512, n_users / 8):
        size *= 2
    return size


def auto_batch_size(n_train: int) -> int:
    """Large batches are fast (per-step overhead dominates on CPU), but a small dataset
    needs enough steps per epoch to learn: the largest power of two <= n_train / 64,
    within [256, 8192]. ml-1m (900k training ratings) gets 8192."""
    size = 256
    while size * 2 <= min(8192, n_train / 64):
        size *= 2
    return size


MONITORS = {  # the metric that picks the best epoch, by match
    "softmax": ("tune_ndcg@10", True, "tune NDCG@10", "best_ndcg"),
    "dot": ("tune_rmse", False, "tune RMSE", "best_rmse"),
    "cosine": ("tune_rmse", False, "tune RMSE", "best_rmse"),
}


def train(paths, params: TrainParams, device: str, resume: bool,
          threads: int | None = None) -> dict:
    from rec.engine import runtime, trainer
    import paddle

    from rec.datasets.tuning import tuning_view

    job = runtime.start(device, threads)
    # the evaluation split is never read: the tuning view holds the training ratings only
    ds = tuning_view(load_dataset(paths, mmap=True))
    (tu, _, tr), _ = ds.train_val()
    n_train, train_mean = len(tu), float(tr.mean())
    del tu, tr
    if resume:
        given = params
        fresh = {"epoch": 0, "history": [], "best_epoch": None, "bad_epochs": 0}
        state, params = trainer.read_state(paths.model, "rec train", fresh, [(PARAMS, OPTIMIZER)],
                                           lambda saved: resumed_params(TrainParams, given, saved))
    from rec.twotower import sampled

    resolve_auto(params, n_train, ds.n_users, sampled.is_large(ds.n_movies))
    monitor = trainer.Monitor(*MONITORS[params.match])
    if not resume:
        state = trainer.new_state(monitor)
    state.setdefault(monitor.state_key, None)
    if params.match == "softmax":
        from rec.twotower import retrieval as glue

        config = glue.model_config(ds, train_mean, tower_dim=params.tower_dim,
                                   history_dropout=params.dropout,
                                   sparse_embeddings=sampled.lazy_adam(ds.n_movies,
                                                                       params.weight_decay))
        net_class = glue.RecallRankTwoTower
        columns = {"pick_loss": "pick loss", "rating_loss": "rating loss",
                   "tune_hr@10": "tune HR@10", "tune_ndcg@10": "tune NDCG@10", "tune_rmse": "tune RMSE"}
        finite = ("tune_ndcg@10", "tune_rmse")
    else:
        from rec.twotower import training as glue

        config = glue.model_config(ds, params.match, train_mean,
                                   tower_dim=params.tower_dim, dropout=params.dropout)
        net_class = glue.TwoTower
        columns = {"train_loss": "train loss", "tune_rmse": "tune RMSE", "tune_mae": "tune MAE"}
        finite = ("tune_rmse",)
    runtime.seed_all(params.seed)
    net = net_class(config)
    if getattr(config, "sparse_embeddings", False):  # AdamW with no weight decay is Adam
        optimizer = paddle.optimizer.Adam(learning_rate=params.lr, parameters=net.parameters(),
                                          lazy_mode=True)
    else:
        optimizer = paddle.optimizer.AdamW(learning_rate=params.lr, parameters=net.parameters(),
                                           weight_decay=params.weight_decay)
    data_id = dataset_identity(paths)
    state["config"] = full_config = {
        "model": config.to_json(), "train": params.__dict__, "device": job.device,
        "processes": job.world,
        "dataset": {"name": ds.vocab.dataset, "split": ds.vocab.split, "fingerprint": data_id},
        "selection": "epochs and early stopping on the tuning slice (dataset.split.tuning) "
                     "carved from the training ratings; no refit",
        "rec_version": __version__}
    spec = trainer.FitSpec(
        run="rec train", folder=paths.model, epochs=params.epochs, patience=params.patience,
        seed=params.seed, monitor=monitor, params=params.__dict__, data_id=data_id,
        data_name="output/dataset",
        title=f"rec train · {ds.vocab.dataset} · {params.match} · {job.device}"
              + (f" × {job.world} processes" if job.world > 1 else ""),
        columns=columns, finite=finite, keep_last=params.select == "last")
    if params.match == "softmax":
        objective = glue.recall_rank_objective(net, optimizer, ds, params.batch_size,
                                               full_config)
        keys = ("tune_hr@10", "tune_ndcg@10", "tune_rmse", "tune_mae", "pick_loss", "rating_loss")
    else:
        objective = glue.rating_objective(net, optimizer, ds, params.batch_size, full_config)
        keys = ("tune_rmse", "tune_mae", "train_loss")

    def summarize(result) -> dict:
        return {"dataset": ds.vocab.dataset, "match": params.match, "device": job.device,
                **result.summary(*keys), **result.speed()}

    metrics = trainer.fit(spec, job, objective, state, resume, summarize).metrics
    if job.main:
        manifest.record(paths, "train", {**params.__dict__, "device": job.device},
                        inputs=dataset_paths(paths),
                        outputs=[paths.model.best, paths.model.history])  # every file
    return metrics


@stage(writes=("output",), into=("model_dir", "model.best", "model.checkpoint",
                                  "model.staging.best"), params=TrainParams)
def command(ctx: typer.Context, params: TrainParams, device: Device = "cpu",
            resume: Resume = False, nproc: Nproc = 1, threads: Threads = None,
            fmt: Format = "auto") -> None:
    params.check()
    paths = get_paths(ctx)
    if nproc > 1:  # the same command in N processes; rank 0 writes the files
        from rec.process.launch import run_stage

        require(dataset_paths(paths), "rec preprocess")  # fail here, not in N workers
        metrics = run_stage(paths, "train", params.__dict__, device, resume, nproc, paths.model,
                            {"threads": threads})
    else:
        metrics = train(paths, params, device, resume, threads)
    emit_object(metrics, fmt)
