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
resumed run retraces an uninterrupted one exactly. The options and their checks are here;
the training is rec/twotower/fit.py's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import typer

from rec.results import emit_object
from rec.datasets.contract import dataset_paths
from rec.errors import UsageError
from rec.paths import require
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
        from rec.twotower import fit

        metrics = fit.train(paths, params, device, resume, threads,
                            lambda saved: resumed_params(TrainParams, params, saved))
    emit_object(metrics, fmt)
