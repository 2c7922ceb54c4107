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
from rec.twotower import kinds

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
        "--match", rich_help_panel=TRAINING, help=kinds.match_help())] = kinds.DEFAULT
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
        kinds.kind(self.match)
        if self.dropout != -1.0 and not 0 <= self.dropout <= 0.9:
            raise UsageError(f"--dropout must be -1 (auto) or in 0..0.9 (got {self.dropout})")
        if self.lr != 0:
            positive("--lr", self.lr)
        if not 0 <= self.weight_decay < float("inf"):
            raise UsageError(f"--weight-decay must be a non-negative number (got {self.weight_decay})")


def train(paths, params: TrainParams, device: str, resume: bool,
          threads: int | None = None) -> dict:
    from rec.engine import runtime, trainer
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
    kind = kinds.kind(params.match)
    kind.resolve_auto(params, n_train, ds.n_users, ds.n_movies)
    monitor = trainer.Monitor(*kind.monitor)
    if not resume:
        state = trainer.new_state(monitor)
    state.setdefault(monitor.state_key, None)
    config = kind.model_config(ds, train_mean, params)
    runtime.seed_all(params.seed)
    net = kind.network(config)
    optimizer = kind.optimizer(net, config, params.lr, params.weight_decay)
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
        columns=kind.columns, finite=kind.finite, keep_last=params.select == "last")
    objective = kind.objective(net, optimizer, ds, params.batch_size, full_config)

    def summarize(result) -> dict:
        return {"dataset": ds.vocab.dataset, "match": params.match, "device": job.device,
                **result.summary(*kind.keys), **result.speed()}

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
