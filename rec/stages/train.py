"""`rec train`: fit the two-tower rating model on the saved train split.

Every epoch ends with a validation pass (RMSE, MAE) and a checkpoint of everything needed to
continue (weights, optimizer state, epoch, history), swapped in atomically: Ctrl-C keeps the
last complete checkpoint and `--resume` continues from it. The best epoch's weights are kept
in output/model/model.pdparams beside config.json, which rebuilds the network alone.

Reproducible: the shuffle and the dropout masks of epoch e depend only on (seed, e), so a
resumed run retraces an uninterrupted one exactly.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np
import typer
from rich.table import Table

from rec import __version__, manifest
from rec.atomic import atomic_dir, write_json
from rec.console import EpochDisplay, emit_object, is_quiet, log, set_quiet
from rec.datasets.contract import TRAIN, VAL, dataset_identity, dataset_paths, load_dataset
from rec.errors import UsageError
from rec.paths import require
from rec.stages import get_paths, guarded

HELP = "Train the two-tower rating model (checkpoints each epoch, early stopping, --resume)."
CHECKPOINT = "checkpoint"
MIN_IMPROVEMENT = 1e-4  # val RMSE must improve by this much to count as better


@dataclass
class TrainParams:
    epochs: int = 10
    batch_size: int = 0  # 0 = auto_batch_size(number of training ratings)
    lr: float = 5e-3
    weight_decay: float = 0.0
    seed: int = 42
    patience: int = 3
    match: str = "dot"
    tower_dim: int = 32
    dropout: float = 0.1


def auto_batch_size(n_train: int) -> int:
    """Large batches are fast (per-step overhead dominates on CPU), but a small dataset
    needs enough steps per epoch to learn: the largest power of two <= n_train / 64,
    within [256, 8192]. ml-1m (900k training ratings) gets 8192."""
    size = 256
    while size * 2 <= min(8192, n_train / 64):
        size *= 2
    return size


def epoch_table(history: list[dict], title: str) -> Table:
    table = Table(title=title)
    for col in ("epoch", "train loss", "val RMSE", "val MAE", "samples/s", "elapsed"):
        table.add_column(col, justify="right")
    best = min((h["val_rmse"] for h in history), default=None)
    for h in history:
        mark = " *" if h["val_rmse"] == best else ""
        table.add_row(str(h["epoch"]), f"{h['train_loss']:.4f}", f"{h['val_rmse']:.4f}{mark}",
                      f"{h['val_mae']:.4f}", f"{h['samples_per_s']:,.0f}", f"{h['elapsed']:.1f}s")
    return table


def train(paths, params: TrainParams, device: str, resume: bool) -> dict:
    from rec import runtime
    from rec.twotower import training
    import paddle

    rank, world = runtime.init_distributed()
    main_rank = rank == 0  # only rank 0 writes files and talks to the user
    if not main_rank:
        set_quiet(True)
    device = runtime.setup_device(device, distributed=world > 1)
    ds = load_dataset(paths)
    tu, tm, tr = ds.part(TRAIN)
    vu, vm, vr = ds.part(VAL)
    if len(tu) == 0 or len(vu) == 0:
        raise UsageError("the saved split has an empty train or validation part: "
                         "run `rec preprocess` with another --val-ratio")
    model_dir = paths.model_dir
    ckpt_dir = model_dir / CHECKPOINT
    data_fp = dataset_identity(paths)
    state = {"epoch": 0, "history": [], "best_rmse": None, "best_epoch": None, "bad_epochs": 0}
    if resume:
        epochs = params.epochs
        state, params = runtime.read_checkpoint(
            ckpt_dir, "rec train", state, ["model.pdparams", "optimizer.pdopt"],
            lambda saved: TrainParams(**{**saved, "epochs": epochs}))
        if state["data_fingerprint"] != data_fp:
            raise UsageError("output/dataset changed since the checkpoint was written: "
                             "train from scratch (without --resume)")
    if params.batch_size == 0:
        params.batch_size = auto_batch_size(len(tu))
    train_mean = float(tr.mean())
    config = training.model_config(ds, params.match, train_mean, tower_dim=params.tower_dim,
                                   dropout=params.dropout)
    paddle.seed(params.seed)
    np.random.seed(params.seed)
    net = training.TwoTower(config)
    optimizer = paddle.optimizer.AdamW(learning_rate=params.lr, parameters=net.parameters(),
                                       weight_decay=params.weight_decay)
    if resume:
        runtime.restore(ckpt_dir, "rec train", net, optimizer, "model.pdparams",
                         "optimizer.pdopt")
        log(f"resuming after epoch {state['epoch']} (best val RMSE {state['best_rmse']:.4f} "
            f"at epoch {state['best_epoch']})")
    # Data parallel: every rank walks the same global batches and takes its slice of each;
    # paddle.DataParallel averages the gradients, so a step sees the whole global batch.
    model = paddle.DataParallel(net) if world > 1 else net
    full_config = {"model": config.to_json(), "train": params.__dict__, "device": device,
                   "processes": world,
                   "dataset": {"name": ds.vocab.dataset, "split": ds.vocab.split,
                               "fingerprint": data_fp},
                   "rec_version": __version__}
    feeder = training.Feeder(ds)
    targets = paddle.to_tensor(tr.astype(np.float32))
    history = state["history"]
    title = f"rec train · {ds.vocab.dataset} · {params.match} · {device}" + \
        (f" × {world} processes" if world > 1 else "")
    display = EpochDisplay(title, history, epoch_table)
    t_start = time.perf_counter()
    try:
        for epoch in range(state["epoch"] + 1, params.epochs + 1):
            if state["bad_epochs"] >= params.patience:
                break
            t0 = time.perf_counter()
            paddle.seed(params.seed * 1000 + epoch)  # dropout masks depend on (seed, epoch)
            order = np.random.default_rng([params.seed, epoch]).permutation(len(tu))
            model.train()
            loss_sum = 0.0
            n_batches = (len(order) + params.batch_size - 1) // params.batch_size
            display.epoch_started(epoch, n_batches)
            for b in range(n_batches):
                idx = order[b * params.batch_size: (b + 1) * params.batch_size]
                if len(idx) < world:  # every process needs a sample: drop a tiny tail
                    break
                idx = idx[rank::world]
                pred = model(*feeder.inputs(tu[idx], tm[idx]))
                y = paddle.gather(targets, paddle.to_tensor(idx))
                loss = paddle.nn.functional.mse_loss(pred, y)
                loss.backward()
                optimizer.step()
                optimizer.clear_grad()
                loss_sum += float(loss) * len(idx)
                display.advance()
            train_seconds = time.perf_counter() - t0
            loss_sum = runtime.sum_across_ranks(loss_sum, world)
            val = training.rating_metrics(net, feeder, vu, vm, vr)
            rmse, mae = val["val_rmse"], val["val_mae"]
            runtime.check_finite(epoch, train_loss=loss_sum / len(order), val_rmse=rmse)
            row = {"epoch": epoch, "train_loss": loss_sum / len(order), "val_rmse": rmse,
                   "val_mae": mae, "samples_per_s": len(order) / train_seconds,
                   "epoch_seconds": time.perf_counter() - t0,
                   "elapsed": time.perf_counter() - t_start}
            history.append(row)
            improved = state["best_rmse"] is None or rmse < state["best_rmse"] - MIN_IMPROVEMENT
            if improved:
                state.update(best_rmse=rmse, best_epoch=epoch, bad_epochs=0)
            else:
                state["bad_epochs"] += 1
            state.update(epoch=epoch, history=history, params=params.__dict__,
                         data_fingerprint=data_fp, config=full_config)
            if main_rank:
                if improved:
                    runtime.save_paddle(net.state_dict(), paths.model.params)
                    write_json(paths.model.config, full_config)
                with atomic_dir(ckpt_dir) as tmp:  # weights, optimizer, state move together
                    runtime.save_weights(tmp, net, optimizer, "model.pdparams",
                                          "optimizer.pdopt")
                    write_json(tmp / "state.json", state)
                write_json(model_dir / "history.json", history)
            if not display.update(history):
                log(f"epoch {epoch}: train loss {row['train_loss']:.4f}  val RMSE {rmse:.4f}  "
                    f"MAE {mae:.4f}  {row['samples_per_s']:,.0f} samples/s  "
                    f"{row['elapsed']:.1f}s" + ("  *best" if improved else ""))
    finally:
        display.stop()
    if state["bad_epochs"] >= params.patience and state["epoch"] < params.epochs:
        log(f"early stop: no improvement for {params.patience} epochs")
    if not history:
        raise UsageError("nothing to train: the checkpoint already covers --epochs")
    best = next(h for h in history if h["epoch"] == state["best_epoch"])
    metrics = {
        "dataset": ds.vocab.dataset, "match": params.match, "device": device,
        "best_epoch": state["best_epoch"], "epochs_run": state["epoch"],
        "val_rmse": round(best["val_rmse"], 6), "val_mae": round(best["val_mae"], 6),
        "train_loss": round(best["train_loss"], 6),
        "samples_per_s": round(float(np.mean([h["samples_per_s"] for h in history])), 1),
        "seconds": round(history[-1]["elapsed"], 2), "seed": params.seed, "processes": world,
    }
    if not main_rank:
        return metrics
    write_json(model_dir / "metrics.json", metrics)
    manifest.record(paths, "train", {**params.__dict__, "device": device},
                    inputs=dataset_paths(paths),
                    outputs=[paths.model.params, paths.model.config])
    return metrics


@guarded
def command(
    ctx: typer.Context,
    device: str = typer.Option("cpu", "--device", help="cpu, gpu or gpu:N."),
    epochs: int = typer.Option(TrainParams.epochs, "--epochs", min=1, help="Epochs in total."),
    batch_size: int = typer.Option(TrainParams.batch_size, "--batch-size", min=0,
                                   help="Ratings per step; 0 = auto (8192 on ml-1m, smaller "
                                        "for small datasets)."),
    lr: float = typer.Option(TrainParams.lr, "--lr", help="Adam learning rate."),
    weight_decay: float = typer.Option(TrainParams.weight_decay, "--weight-decay"),
    seed: int = typer.Option(TrainParams.seed, "--seed", help="Fixes initialisation, shuffling, dropout."),
    patience: int = typer.Option(TrainParams.patience, "--patience", min=1,
                                 help="Stop after this many epochs without a better val RMSE."),
    match: str = typer.Option(TrainParams.match, "--match",
                              help="dot (mean + u.m + biases) or cosine (the course's 5*cos)."),
    tower_dim: int = typer.Option(TrainParams.tower_dim, "--tower-dim", min=1),
    dropout: float = typer.Option(TrainParams.dropout, "--dropout", min=0.0, max=0.9),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint."),
    nproc: int = typer.Option(1, "--nproc", min=1,
                              help="Data-parallel processes on this host (paddle.distributed.launch)."),
    fmt: str = typer.Option("auto", "--format", help="auto | table | tsv | json."),
) -> None:
    if match not in ("dot", "cosine"):
        raise UsageError(f"unknown --match {match!r}: choose dot or cosine")
    if not lr > 0 or lr == float("inf"):
        raise UsageError(f"--lr must be a positive number (got {lr})")
    if not 0 <= weight_decay < float("inf"):
        raise UsageError(f"--weight-decay must be a non-negative number (got {weight_decay})")
    params = TrainParams(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                         seed=seed, patience=patience, match=match, tower_dim=tower_dim,
                         dropout=dropout)
    paths = get_paths(ctx)
    if nproc > 1:
        metrics = train_with_launcher(paths, params, device, resume, nproc)
    else:
        metrics = train(paths, params, device, resume)
    emit_object(metrics, fmt)


def train_with_launcher(paths, params: TrainParams, device: str, resume: bool, nproc: int) -> dict:
    """`--nproc N`: the same `rec train`, in N data-parallel processes started by Paddle's
    launcher; rank 0 writes the usual files, which are read back for the result."""
    from rec.launch import run_launcher, stage_args

    require(dataset_paths(paths), "rec preprocess")  # fail here, not in N workers
    args = stage_args(paths, "train", params.__dict__, device, resume, is_quiet())
    run_launcher(nproc, device, paths.model_dir / "launch-logs", args)
    return json.loads((paths.model_dir / "metrics.json").read_text())
