"""`rec train`: fit the two-tower rating model on the saved train split.

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

from rec import __version__, manifest
from rec.console import emit_object
from rec.datasets.contract import dataset_identity, dataset_paths, load_dataset
from rec.errors import UsageError
from rec.paths import OPTIMIZER, PARAMS, require
from rec.stages import get_paths, guarded
from rec.stages.options import (Device, Dropout, Epochs, Format, Nproc, Resume, options_from,
                                positive)

HELP = "Train the two-tower rating model (checkpoints each epoch, early stopping, --resume)."
SHORT = "Train the two-tower rating model."  # its line in `rec --help`


@dataclass
class TrainParams:
    """The run's parameters: each field is its command-line option (see options_from)."""

    epochs: Epochs = 10
    batch_size: Annotated[int, typer.Option(
        "--batch-size", min=0, help="Ratings per step; 0 = auto (8192 on ml-1m, smaller for "
        "small datasets).")] = 0
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate.")] = 5e-3
    weight_decay: Annotated[float, typer.Option("--weight-decay")] = 0.0
    seed: Annotated[int, typer.Option(
        "--seed", help="Fixes initialisation, shuffling, dropout.")] = 42
    patience: Annotated[int, typer.Option(
        "--patience", min=1, help="Stop after this many epochs without a better val RMSE.")] = 3
    match: Annotated[str, typer.Option(
        "--match", help="dot (mean + u.m + biases) or cosine (the course's 5*cos).")] = "dot"
    tower_dim: Annotated[int, typer.Option("--tower-dim", min=1)] = 32
    dropout: Dropout = 0.1

    def check(self) -> None:
        if self.match not in ("dot", "cosine"):
            raise UsageError(f"unknown --match {self.match!r}: choose dot or cosine")
        positive("--lr", self.lr)
        if not 0 <= self.weight_decay < float("inf"):
            raise UsageError(f"--weight-decay must be a non-negative number (got {self.weight_decay})")


def auto_batch_size(n_train: int) -> int:
    """Large batches are fast (per-step overhead dominates on CPU), but a small dataset
    needs enough steps per epoch to learn: the largest power of two <= n_train / 64,
    within [256, 8192]. ml-1m (900k training ratings) gets 8192."""
    size = 256
    while size * 2 <= min(8192, n_train / 64):
        size *= 2
    return size


def train(paths, params: TrainParams, device: str, resume: bool) -> dict:
    from rec import runtime, trainer
    from rec.twotower import training
    import paddle

    job = runtime.start(device)
    ds = load_dataset(paths)
    (tu, _, tr), _ = ds.train_val()
    monitor = trainer.Monitor("val_rmse", bigger_is_better=False, label="val RMSE",
                              state_key="best_rmse")
    state = trainer.new_state(monitor)
    if resume:
        epochs = params.epochs
        state, params = trainer.read_state(paths.model, "rec train", state, [(PARAMS, OPTIMIZER)],
                                           lambda saved: TrainParams(**{**saved, "epochs": epochs}))
    if params.batch_size == 0:
        params.batch_size = auto_batch_size(len(tu))
    config = training.model_config(ds, params.match, float(tr.mean()),
                                   tower_dim=params.tower_dim, dropout=params.dropout)
    runtime.seed_all(params.seed)
    net = training.TwoTower(config)
    optimizer = paddle.optimizer.AdamW(learning_rate=params.lr, parameters=net.parameters(),
                                       weight_decay=params.weight_decay)
    data_id = dataset_identity(paths)
    state["config"] = full_config = {
        "model": config.to_json(), "train": params.__dict__, "device": job.device,
        "processes": job.world,
        "dataset": {"name": ds.vocab.dataset, "split": ds.vocab.split, "fingerprint": data_id},
        "rec_version": __version__}
    spec = trainer.FitSpec(
        run="rec train", folder=paths.model, epochs=params.epochs, patience=params.patience,
        seed=params.seed, monitor=monitor, params=params.__dict__, data_id=data_id,
        data_name="output/dataset",
        title=f"rec train · {ds.vocab.dataset} · {params.match} · {job.device}"
              + (f" × {job.world} processes" if job.world > 1 else ""),
        columns={"train_loss": "train loss", "val_rmse": "val RMSE", "val_mae": "val MAE"},
        finite=("val_rmse",))
    objective = training.rating_objective(net, optimizer, ds, params.batch_size, paths.model,
                                          full_config)

    def summarize(result) -> dict:
        return {"dataset": ds.vocab.dataset, "match": params.match, "device": job.device,
                **result.summary("val_rmse", "val_mae", "train_loss"), **result.speed()}

    metrics = trainer.fit(spec, job, objective, state, resume, summarize).metrics
    if job.main:
        manifest.record(paths, "train", {**params.__dict__, "device": job.device},
                        inputs=dataset_paths(paths), outputs=[paths.model.params,
                                                              paths.model.config])
    return metrics


@guarded
@options_from(TrainParams)
def command(ctx: typer.Context, params: TrainParams, device: Device = "cpu",
            resume: Resume = False, nproc: Nproc = 1, fmt: Format = "auto") -> None:
    params.check()
    paths = get_paths(ctx)
    if nproc > 1:  # the same command in N processes; rank 0 writes the files
        from rec.launch import run_stage

        require(dataset_paths(paths), "rec preprocess")  # fail here, not in N workers
        metrics = run_stage(paths, "train", params.__dict__, device, resume, nproc, paths.model)
    else:
        metrics = train(paths, params, device, resume)
    emit_object(metrics, fmt)
