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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import typer

from rec import __version__, manifest
from rec.console import emit_object, is_quiet
from rec.errors import UsageError
from rec.paths import CATEGORIES
from rec.stages import get_paths, guarded

HELP = ("Train a CTR model (Wide&Deep or DeepFM) beside a logistic-regression baseline, on "
        "--data movielens (output/dataset) or --data criteo --input FILE (a raw Criteo file): "
        "validation AUC and log loss each epoch, checkpoints, --resume. Writes output/ctr/.")
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


# --- training -------------------------------------------------------------------------------


def train(paths, p: CtrParams, device: str, resume: bool) -> dict:
    from rec import runtime, trainer
    from rec.ctr import training as ct
    from rec.ctr.sources import make_source
    import paddle

    monitor = trainer.Monitor("auc", bigger_is_better=True, label="val AUC", state_key="best_auc")
    state = trainer.new_state(monitor, baseline_best=None)
    if resume:
        epochs = p.epochs
        state, p = trainer.read_state(paths.ctr, "rec ctr-train", state, ct.CHECKPOINT_FILES,
                                      lambda saved: CtrParams(**{**saved, "epochs": epochs}))
    check(p)
    job = runtime.start(device)
    vocab = paths.ctr.checkpoint / CATEGORIES if resume and p.categorical == "vocab" else None
    source, data_id, input_files = make_source(paths, p, vocab)
    if p.val_input:
        source.validation()  # read (and check) the validation file before any training
    runtime.seed_all(p.seed)
    config, model, _, baseline = ct.new_models(source, p.model, p.embedding_size,
                                               p.hidden_sizes(), p.dropout)
    opt = paddle.optimizer.Adam(learning_rate=p.lr, parameters=model.parameters())
    base_opt = paddle.optimizer.Adam(learning_rate=p.baseline_lr, parameters=baseline.parameters())
    full_config = {"model": config.to_json(), "features": source.describe(),
                   "train": asdict(p), "device": job.device, "data_fingerprint": data_id,
                   "rec_version": __version__}
    if p.data == "movielens":
        v = source.ds.vocab
        full_config["dataset"] = {"name": v.dataset, "split": v.split}
    label = v.dataset if p.data == "movielens" else Path(p.input).name
    spec = trainer.FitSpec(
        run="rec ctr-train", folder=paths.ctr, epochs=p.epochs, patience=p.patience, seed=p.seed,
        monitor=monitor, params=asdict(p), data_id=data_id, data_name="the training data",
        title=f"rec ctr-train · {label} · {p.model} · {job.device}",
        columns={"train_loss": "train loss", "auc": "val AUC", "logloss": "val log loss",
                 "baseline_auc": "LR AUC", "baseline_logloss": "LR log loss"},
        finite=("logloss",), unit="samples",
        no_samples="no training lines: every line went to validation")
    objective = ct.ctr_objective(source, p.batch_size, model, opt, baseline, base_opt,
                                 paths.ctr, full_config, state)

    def summarize(result) -> dict:
        base = result.state["baseline_best"]
        metrics = {
            "data": p.data, "dataset": label, "model": p.model, "device": job.device,
            **result.summary("auc", "logloss"),
            "baseline_auc": round(base["auc"], 6), "baseline_logloss": round(base["logloss"], 6),
            "baseline": "logistic regression over the same features",
            "train_loss": round(result.best["train_loss"], 6),
            "train_samples": result.state["n_train"],
            "val_samples": int(full_config.get("val_samples", 0)), **result.speed()}
        if job.main and p.data == "movielens":
            metrics.update(ct.recall_then_rank(paths, source, p.candidates))
        return metrics

    metrics = trainer.fit(spec, job, objective, state, resume, summarize).metrics
    if job.main:
        manifest.record(paths, "ctr-train", {**asdict(p), "device": job.device},
                        inputs=input_files, outputs=[paths.ctr.best, paths.ctr.metrics])
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
        run_launcher(nproc, device, paths.ctr.launch_logs, args)
        metrics = json.loads(paths.ctr.metrics.read_text())
    else:
        metrics = train(paths, params, device, resume)
    emit_object(metrics, fmt)
