"""`rec ctr-train`: a click-through-rate model (Wide&Deep or DeepFM) next to a logistic
regression baseline, on MovieLens-as-CTR or a raw Criteo file.

Data (`--data`):
  movielens  output/dataset on its saved split; label 1 when the rating is 4 or 5; sparse
             fields user, gender, age, occupation, movie, year bucket, genres (pooled), and
             with --crosses (default) user x genre weights in the wide part
  criteo     a raw Criteo file (`--input PATH`, plain or .gz), streamed chunk by chunk every
             epoch; validation = a seeded --val-ratio of its lines, or `--val-input PATH`

Both models and the baseline are trained in the same run on the same batches; each epoch
ends with validation AUC and log loss for both, a checkpoint (weights, optimizer states,
state) swapped in atomically, and, when the model's AUC improved, the best model in
output/ctr/model/ (model.pdparams, config.json that rebuilds it, weights.npz for numpy
inference, vocab.npz for --categorical vocab), also swapped in whole. `--resume` continues
from the checkpoint; the shuffle and dropout of epoch e depend on (seed, e) only, so a
resumed run retraces an uninterrupted one.

With --data movielens and output/features present, the run ends with the recall-then-rank
comparison: HR@10 and NDCG@10 of the two-tower model's top 10 (recall alone) and of its top
`--candidates` reordered by the CTR model (recall + rank), on the validation users, in the
metrics (keys recall_hr@10, rerank_hr@10, recall_ndcg@10, rerank_ndcg@10).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.table import Table

from rec import __version__, manifest
from rec.atomic import atomic_dir, write_json
from rec.console import EpochDisplay, emit_object, is_quiet, log, set_quiet
from rec.paths import CATEGORIES as VOCAB_FILE
from rec.paths import CONFIG as CONFIG_FILE
from rec.paths import PARAMS as PARAMS_FILE
from rec.paths import WEIGHTS as WEIGHTS_FILE
MODEL_DIR = "model"
from rec.errors import UsageError
from rec.stages import get_paths, guarded

HELP = ("Train a CTR model (Wide&Deep or DeepFM) beside a logistic-regression baseline, on "
        "--data movielens (output/dataset) or --data criteo --input FILE (a raw Criteo file): "
        "validation AUC and log loss each epoch, checkpoints, --resume. Writes output/ctr/.")
CHECKPOINT = "checkpoint"
MIN_IMPROVEMENT = 1e-4  # val AUC must improve by this much to count as better
DATA = ("movielens", "criteo")
MODELS = ("wide_deep", "deepfm")


@dataclass
class CtrParams:
    data: str = "movielens"
    input: Optional[str] = None
    val_input: Optional[str] = None
    val_ratio: float = 0.1
    model: str = "wide_deep"
    epochs: int = 5
    batch_size: int = 4096
    lr: float = 3e-3
    baseline_lr: float = 2e-2
    embedding_size: int = 16
    hidden: str = "128,64"
    dropout: float = 0.0
    seed: int = 42
    patience: int = 2
    categorical: str = "hash"
    hash_size: int = 2 ** 18
    min_count: int = 10
    crosses: bool = True
    candidates: int = 200

    def hidden_sizes(self) -> tuple:
        try:
            sizes = tuple(int(x) for x in self.hidden.split(","))
        except ValueError:
            sizes = ()
        if not sizes or min(sizes) < 1:
            raise UsageError(f"--hidden must be layer sizes separated by commas, e.g. 128,64 "
                             f"(got {self.hidden!r})")
        return sizes


def check(p: CtrParams) -> None:
    if p.data not in DATA:
        raise UsageError(f"unknown --data {p.data!r}: choose movielens or criteo")
    if p.model not in MODELS:
        raise UsageError(f"unknown --model {p.model!r}: choose wide_deep or deepfm")
    if p.data == "criteo" and not p.input:
        raise UsageError("--data criteo needs --input PATH (a raw Criteo file)")
    if p.data == "movielens" and (p.input or p.val_input):
        raise UsageError("--input and --val-input are for --data criteo; --data movielens "
                         "reads output/dataset")
    if p.categorical not in ("hash", "vocab"):
        raise UsageError(f"unknown --categorical {p.categorical!r}: choose hash or vocab")
    if not 0 < p.val_ratio < 1:
        raise UsageError(f"--val-ratio must be between 0 and 1 (got {p.val_ratio})")
    for name, value in (("--lr", p.lr), ("--baseline-lr", p.baseline_lr)):
        if not value > 0 or value == float("inf"):
            raise UsageError(f"{name} must be a positive number (got {value})")
    p.hidden_sizes()


# --- display --------------------------------------------------------------------------------


def epoch_table(history: list[dict], title: str) -> Table:
    table = Table(title=title)
    for col in ("epoch", "train loss", "val AUC", "val log loss", "LR AUC", "LR log loss",
                "samples/s", "elapsed"):
        table.add_column(col, justify="right")
    best = max((h["auc"] for h in history), default=None)
    for h in history:
        mark = " *" if h["auc"] == best else ""
        table.add_row(str(h["epoch"]), f"{h['train_loss']:.4f}", f"{h['auc']:.4f}{mark}",
                      f"{h['logloss']:.4f}", f"{h['baseline_auc']:.4f}",
                      f"{h['baseline_logloss']:.4f}", f"{h['samples_per_s']:,.0f}",
                      f"{h['elapsed']:.1f}s")
    return table


# --- training -------------------------------------------------------------------------------


def train(paths, p: CtrParams, device: str, resume: bool) -> dict:
    from rec import runtime as training
    from rec.ctr import sources
    from rec.ctr import training as ct
    import paddle

    out_dir = paths.ctr_dir
    ckpt_dir, model_dir = out_dir / CHECKPOINT, out_dir / MODEL_DIR
    state = {"epoch": 0, "history": [], "best_auc": None, "best_epoch": None, "bad_epochs": 0,
             "baseline_best": None}
    if resume:
        epochs = p.epochs
        state, p = training.read_checkpoint(
            ckpt_dir, "rec ctr-train", state, [f"{name}.{ext}" for name in ("model", "baseline")
                                               for ext in ("pdparams", "pdopt")],
            lambda saved: CtrParams(**{**saved, "epochs": epochs}))
    check(p)
    rank, world = training.init_distributed()
    main_rank = rank == 0  # only rank 0 writes files and talks to the user
    if not main_rank:
        set_quiet(True)
    device = training.setup_device(device, distributed=world > 1)
    vocab_ckpt = ckpt_dir / VOCAB_FILE if resume and p.categorical == "vocab" else None
    source, data_fp, input_files = sources.make_source(paths, p, vocab_ckpt)
    if resume and state["data_fingerprint"] != data_fp:
        raise UsageError("the training data changed since the checkpoint was written: "
                         "train from scratch (without --resume)")
    if p.val_input:
        source.validation()  # read (and check) the validation file before any training
    paddle.seed(p.seed)
    np.random.seed(p.seed)
    config, model, base_config, baseline = ct.new_models(
        source, p.model, p.embedding_size, p.hidden_sizes(), p.dropout)
    opt = paddle.optimizer.Adam(learning_rate=p.lr, parameters=model.parameters())
    base_opt = paddle.optimizer.Adam(learning_rate=p.baseline_lr, parameters=baseline.parameters())
    if resume:
        for net, optim, name in ((model, opt, "model"), (baseline, base_opt, "baseline")):
            training.restore(ckpt_dir, "rec ctr-train", net, optim, f"{name}.pdparams",
                             f"{name}.pdopt")
        log(f"resuming after epoch {state['epoch']} (best val AUC {state['best_auc']:.4f} "
            f"at epoch {state['best_epoch']})")
    # Data parallel: each rank takes its slice of every batch; gradients are averaged.
    train_model = paddle.DataParallel(model) if world > 1 else model
    train_base = paddle.DataParallel(baseline) if world > 1 else baseline
    full_config = {"model": config.to_json(), "features": source.describe(),
                   "train": asdict(p), "device": device, "data_fingerprint": data_fp,
                   "rec_version": __version__}
    if p.data == "movielens":
        v = source.ds.vocab
        full_config["dataset"] = {"name": v.dataset, "split": v.split}
    history = state["history"]
    label = v.dataset if p.data == "movielens" else Path(p.input).name
    display = EpochDisplay(f"rec ctr-train · {label} · {p.model} · {device}", history,
                           epoch_table, unit="samples")
    t_start = time.perf_counter()
    try:
        for epoch in range(state["epoch"] + 1, p.epochs + 1):
            if state["bad_epochs"] >= p.patience:
                break
            t0 = time.perf_counter()
            paddle.seed(p.seed * 1000 + epoch)  # dropout masks depend on (seed, epoch)
            model.train()
            baseline.train()
            loss_sum, n = 0.0, 0
            display.epoch_started(epoch, source.n_train or state.get("n_train"))
            for part in source.train_parts(epoch, p.seed):
                for i in range(0, len(part), p.batch_size):
                    if len(part) - i < world:  # every process needs a sample
                        break
                    batch = part.take(slice(i + rank, i + p.batch_size, world))
                    x = ct.tensors(batch.inputs)
                    y = paddle.to_tensor(batch.labels)
                    loss = ct.bce(train_model(**x), y)
                    loss.backward()
                    opt.step()
                    opt.clear_grad()
                    base_loss = ct.bce(train_base(x["ids"], x.get("weights"), x.get("dense")), y)
                    base_loss.backward()
                    base_opt.step()
                    base_opt.clear_grad()
                    loss_sum += float(loss) * len(batch)
                    n += len(batch)
                    display.advance(len(batch))
            loss_sum = training.sum_across_ranks(loss_sum, world)
            n = int(training.sum_across_ranks(n, world))
            if n == 0:
                raise UsageError("no training lines: every line went to validation")
            train_seconds = time.perf_counter() - t0
            val = source.validation()
            auc, ll = ct.scores(val.labels, ct.predict(model, val))
            b_auc, b_ll = ct.scores(val.labels, ct.predict(baseline, val, baseline=True))
            training.check_finite(epoch, train_loss=loss_sum / n, val_logloss=ll)
            row = {"epoch": epoch, "train_loss": loss_sum / n, "auc": auc, "logloss": ll,
                   "baseline_auc": b_auc, "baseline_logloss": b_ll,
                   "samples_per_s": n / train_seconds, "epoch_seconds": time.perf_counter() - t0,
                   "elapsed": time.perf_counter() - t_start}
            history.append(row)
            improved = state["best_auc"] is None or auc > state["best_auc"] + MIN_IMPROVEMENT
            if improved:
                state.update(best_auc=auc, best_epoch=epoch, bad_epochs=0)
                full_config.update(best_epoch=epoch, val_samples=len(val))
            if improved and main_rank:
                with atomic_dir(model_dir) as tmp:  # the model's files move together
                    paddle.save(model.state_dict(), str(tmp / PARAMS_FILE))
                    write_json(tmp / CONFIG_FILE, full_config)
                    if p.data == "movielens":
                        ct.export_npz(model, tmp / WEIGHTS_FILE)
                    if p.data == "criteo" and p.categorical == "vocab":
                        source.transform.vocab.save(tmp / VOCAB_FILE)
            if not improved:
                state["bad_epochs"] += 1
            if state["baseline_best"] is None or b_auc > state["baseline_best"]["auc"]:
                state["baseline_best"] = {"epoch": epoch, "auc": b_auc, "logloss": b_ll}
            state.update(epoch=epoch, history=history, params=asdict(p), n_train=n,
                         data_fingerprint=data_fp)
            if main_rank:
                with atomic_dir(ckpt_dir) as tmp:  # weights, optimizers, state move together
                    for net, optim, name in ((model, opt, "model"),
                                             (baseline, base_opt, "baseline")):
                        training.save_weights(tmp, net, optim, f"{name}.pdparams",
                                              f"{name}.pdopt")
                    if p.data == "criteo" and p.categorical == "vocab":
                        source.transform.vocab.save(tmp / VOCAB_FILE)
                    write_json(tmp / "state.json", state)
                write_json(out_dir / "history.json", history)
            if not display.update(history):
                log(f"epoch {epoch}: train loss {row['train_loss']:.4f}  val AUC {auc:.4f}  "
                    f"log loss {ll:.4f}  (LR baseline AUC {b_auc:.4f}, log loss {b_ll:.4f})  "
                    f"{row['samples_per_s']:,.0f} samples/s  {row['elapsed']:.1f}s"
                    + ("  *best" if improved else ""))
    finally:
        display.stop()
    if state["bad_epochs"] >= p.patience and state["epoch"] < p.epochs:
        log(f"early stop: no improvement for {p.patience} epochs")
    if not history:
        raise UsageError("nothing to train: the checkpoint already covers --epochs")
    best = next(h for h in history if h["epoch"] == state["best_epoch"])
    base = state["baseline_best"]
    metrics = {
        "data": p.data, "dataset": label, "model": p.model, "device": device,
        "best_epoch": state["best_epoch"], "epochs_run": state["epoch"],
        "auc": round(best["auc"], 6), "logloss": round(best["logloss"], 6),
        "baseline_auc": round(base["auc"], 6), "baseline_logloss": round(base["logloss"], 6),
        "baseline": "logistic regression over the same features",
        "train_loss": round(best["train_loss"], 6), "train_samples": state["n_train"],
        "val_samples": int(full_config.get("val_samples", 0)),
        "samples_per_s": round(float(np.mean([h["samples_per_s"] for h in history])), 1),
        "seconds": round(history[-1]["elapsed"], 2), "seed": p.seed, "processes": world,
    }
    if not main_rank:
        return metrics
    if p.data == "movielens":
        metrics.update(ct.recall_then_rank(paths, source, p.candidates))
    write_json(out_dir / "metrics.json", metrics)
    manifest.record(paths, "ctr-train", {**asdict(p), "device": device}, inputs=input_files,
                    outputs=[model_dir, out_dir / "metrics.json"])
    return metrics


@guarded
def command(
    ctx: typer.Context,
    data: Optional[str] = typer.Option(
        None, "--data", help="movielens (output/dataset, label = rating >= 4) or criteo (the raw "
        "Criteo file given by --input). Default: criteo when --input is given, else movielens."),
    input: Optional[str] = typer.Option(None, "--input", "-i", metavar="PATH",
                                        help="The Criteo file to train on (.gz works)."),
    val_input: Optional[str] = typer.Option(None, "--val-input", metavar="PATH",
                                            help="Criteo: validate on this file instead."),
    val_ratio: float = typer.Option(CtrParams.val_ratio, "--val-ratio",
                                    help="Criteo: the seeded share of lines kept for validation."),
    model: str = typer.Option(CtrParams.model, "--model", help="wide_deep or deepfm."),
    device: str = typer.Option("cpu", "--device", help="cpu, gpu or gpu:N."),
    epochs: int = typer.Option(CtrParams.epochs, "--epochs", min=1, help="Epochs in total."),
    batch_size: int = typer.Option(CtrParams.batch_size, "--batch-size", min=1),
    lr: float = typer.Option(CtrParams.lr, "--lr", help="Adam learning rate of the model."),
    baseline_lr: float = typer.Option(CtrParams.baseline_lr, "--baseline-lr",
                                      help="Adam learning rate of the logistic regression."),
    embedding_size: int = typer.Option(CtrParams.embedding_size, "--embedding-size", min=1),
    hidden: str = typer.Option(CtrParams.hidden, "--hidden", help="Deep layer sizes, e.g. 128,64."),
    dropout: float = typer.Option(CtrParams.dropout, "--dropout", min=0.0, max=0.9),
    seed: int = typer.Option(CtrParams.seed, "--seed",
                             help="Fixes initialisation, shuffling, dropout, the Criteo split."),
    patience: int = typer.Option(CtrParams.patience, "--patience", min=1,
                                 help="Stop after this many epochs without a better val AUC."),
    categorical: str = typer.Option(CtrParams.categorical, "--categorical",
                                    help="Criteo categories: hash (into --hash-size ids) or "
                                    "vocab (values seen --min-count times get an id)."),
    hash_size: int = typer.Option(CtrParams.hash_size, "--hash-size", min=1),
    min_count: int = typer.Option(CtrParams.min_count, "--min-count", min=1),
    crosses: bool = typer.Option(CtrParams.crosses, "--crosses/--no-crosses",
                                 help="MovieLens: user x genre weights in the wide part."),
    candidates: int = typer.Option(CtrParams.candidates, "--candidates", min=10,
                                   help="MovieLens: recall candidates reranked in the "
                                   "recall-then-rank comparison."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint."),
    nproc: int = typer.Option(1, "--nproc", min=1,
                              help="Data-parallel processes on this host (paddle.distributed.launch)."),
    fmt: str = typer.Option("auto", "--format", help="auto | table | tsv | json."),
) -> None:
    from rec.console import resolve_format

    fmt = resolve_format(fmt)
    params = CtrParams(data=data or ("criteo" if input else "movielens"), input=input,
                       val_input=val_input, val_ratio=val_ratio, model=model, epochs=epochs,
                       batch_size=batch_size, lr=lr, baseline_lr=baseline_lr,
                       embedding_size=embedding_size, hidden=hidden, dropout=dropout, seed=seed,
                       patience=patience, categorical=categorical, hash_size=hash_size,
                       min_count=min_count, crosses=crosses, candidates=candidates)
    if not resume:
        check(params)
    paths = get_paths(ctx)
    if nproc > 1:
        from rec.launch import run_launcher, stage_args

        args = stage_args(paths, "ctr-train", asdict(params), device, resume, is_quiet())
        run_launcher(nproc, device, paths.ctr_dir / "launch-logs", args)
        metrics = json.loads((paths.ctr_dir / "metrics.json").read_text())
    else:
        metrics = train(paths, params, device, resume)
    emit_object(metrics, fmt)
