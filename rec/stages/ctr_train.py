"""`rec ctr-train`: the rank stage of 组合推荐 (`--data movielens`, the default `--model
rank`: rec.rank.fit, fitted on the tuning slice over the recall channels' candidates), or
a click-through-rate model (Wide&Deep or DeepFM) next to a logistic regression baseline, on
MovieLens-as-CTR (`--model wide_deep|deepfm`, the course's CTR view) or a raw Criteo file.
What follows is the CTR models'.

Data (`--data`):
  movielens  output/dataset's training ratings through the tuning view (rec.datasets.tuning:
             the validation that chooses epochs and stops early is the tuning slice, never
             the evaluation split); label 1 when the rating is 4 or 5, 0 when it
             is lower and for --negatives unrated movies per rating (drawn each epoch:
             "will watch and like", the rank stage of recall then rank); sparse
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
`--candidates` reordered by pick + RERANK_WEIGHT x log P(ctr) (rec.scoring.rerank_order),
on the evaluation split's users (a report, as `rec evaluate`'s: nothing is chosen on it), in
the metrics (keys recall_hr@10, rerank_hr@10, recall_ndcg@10, rerank_ndcg@10).

The options and their checks are here; the training is rec/ctr/fit.py's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Annotated, Optional

import typer

from rec.results import emit_object
from rec.errors import UsageError
from rec.stages import get_paths, stage
from rec.stages.options import (SEED_RANGE, TRAINING, Device, Dropout, Epochs, Format, Nproc,
                                Resume, positive, resumed_params)

HELP = ("--data movielens: the rank stage over the recall candidates, on the tuning slice "
        "(--model wide_deep/deepfm: the course's CTR view). --data criteo --input FILE: a "
        "CTR model beside logistic regression. Writes output/ctr/.")
DATA = ("movielens", "criteo")
MODELS = ("rank", "wide_deep", "deepfm")


Option = typer.Option
# --hash-size: rows of the shared embedding, far below int32's limit (paddle's embedding
# index). --hash-size x --embedding-size is capped as well: a run peaks at about 40 bytes
# per value (weights, Adam's two moments, checkpoint and best-model copies); measured, 2^22
# x 16 (the cap) peaks at 2.6 GB, 2^24 x 16 at 9.5 GB.
MAX_HASH_SIZE = 2 ** 24
MAX_TABLE_VALUES = 2 ** 26
# options the rank stage has no use for (it learns from each user's candidate lists, 64
# users a step: rec.rank.fit), refused when given to it
CTR_ONLY = ("val_ratio", "batch_size", "baseline_lr", "embedding_size", "dropout",
            "categorical", "hash_size", "min_count", "crosses", "negatives", "candidates")

# --help panels, with the shared options' TRAINING (the model's options too), RUN and OUTPUT
DATA_PANEL, CRITEO_PANEL, MOVIELENS_PANEL = "Data", "Criteo", "MovieLens"


@dataclass
class CtrParams:
    """The run's parameters: each field is its command-line option (see rec.stages.stage)."""

    data: Annotated[Optional[str], Option(
        "--data", rich_help_panel=DATA_PANEL,
        help="movielens (output/dataset; label: 4+ stars) or criteo (the --input file). "
        "[default: criteo given --input, else movielens]")] = None
    input: Annotated[Optional[str], Option(
        "--input", "-i", rich_help_panel=DATA_PANEL,
        metavar="PATH", help="The Criteo file to train on (.gz works).")] = None
    val_input: Annotated[Optional[str], Option(
        "--val-input", rich_help_panel=CRITEO_PANEL,
        metavar="PATH", help="Validate on this file instead.")] = None
    val_ratio: Annotated[float, Option(
        "--val-ratio", rich_help_panel=CRITEO_PANEL,
        help="Share of lines held out (seeded).")] = 0.1
    model: Annotated[Optional[str], Option("--model", rich_help_panel=TRAINING,
        help="rank (movielens' default), wide_deep, deepfm.")] = None
    epochs: Epochs = 5
    batch_size: Annotated[int, Option("--batch-size", rich_help_panel=TRAINING,
        min=1)] = 4096
    lr: Annotated[float, Option("--lr", rich_help_panel=TRAINING,
        help="Adam learning rate.")] = 3e-3
    baseline_lr: Annotated[float, Option(
        "--baseline-lr", rich_help_panel=TRAINING,
        help="The baseline's learning rate.")] = 2e-2
    embedding_size: Annotated[int, Option("--embedding-size", rich_help_panel=TRAINING,
        min=1)] = 16
    hidden: Annotated[str, Option("--hidden", rich_help_panel=TRAINING,
        help="Deep layer sizes.")] = "128,64"
    dropout: Dropout = 0.0
    seed: Annotated[int, Option(
        "--seed", **SEED_RANGE, rich_help_panel=TRAINING,
        help="Fixes init, shuffling, dropout, the Criteo split.")] = 42
    patience: Annotated[int, Option(
        "--patience", rich_help_panel=TRAINING,
        min=1, help="Stop after this many epochs without a better val AUC (rank: NDCG).")] = 2
    categorical: Annotated[str, Option(
        "--categorical", rich_help_panel=CRITEO_PANEL,
        help="hash (into --hash-size ids) or vocab (an id per value seen "
        "--min-count times).")] = "hash"
    hash_size: Annotated[int, Option(
        "--hash-size", rich_help_panel=CRITEO_PANEL, min=1, max=MAX_HASH_SIZE)] = 2 ** 18
    min_count: Annotated[int, Option("--min-count", rich_help_panel=CRITEO_PANEL, min=1)] = 10
    crosses: Annotated[bool, Option(
        "--crosses/--no-crosses", rich_help_panel=MOVIELENS_PANEL,
        help="User x genre weights in the wide part.")] = True
    negatives: Annotated[int, Option(
        "--negatives", rich_help_panel=MOVIELENS_PANEL, min=0, max=100,
        help="Unrated movies per rating, as label 0.")] = 4
    candidates: Annotated[int, Option(
        "--candidates", rich_help_panel=MOVIELENS_PANEL,
        min=10, help="Candidates for the recall + rank comparison.")] = 200

    def __post_init__(self) -> None:
        if self.data is None:
            self.data = self.left_out()["data"]

    def left_out(self) -> dict:
        """What --data and --model stand for when left out, with this run's --input and
        --data (also the manifest's defaults: `rec status` shows what a run changed)."""
        return {"data": "criteo" if self.input else "movielens",
                "model": "rank" if self.data == "movielens" else "wide_deep"}

    def hidden_sizes(self) -> tuple:
        try:
            sizes = tuple(int(x) for x in self.hidden.split(","))
        except ValueError:
            sizes = ()
        if not sizes or min(sizes) < 1:
            raise UsageError(f"--hidden must be layer sizes separated by commas, e.g. 128,64 "
                             f"(got {self.hidden!r})")
        return sizes

    def check(self) -> None:
        if self.model is None:  # after --resume has read the checkpoint's
            self.model = self.left_out()["model"]
        if self.data not in DATA:
            raise UsageError(f"unknown --data {self.data!r}: choose movielens or criteo")
        if self.model not in MODELS:
            raise UsageError(f"unknown --model {self.model!r}: choose rank, wide_deep or deepfm")
        if self.model == "rank" and self.data != "movielens":
            raise UsageError("--model rank ranks MovieLens recall candidates: use it with "
                             "--data movielens (Criteo: wide_deep or deepfm)")
        if self.data == "criteo" and not self.input:
            raise UsageError("--data criteo needs --input PATH (a raw Criteo file)")
        if self.data == "movielens" and (self.input or self.val_input):
            raise UsageError("--input and --val-input are for --data criteo; --data movielens "
                             "reads output/dataset")
        if self.model == "rank":  # it would have recorded them as applied, changing nothing
            given = [f"--{'no-' if getattr(self, f.name) is False else ''}"
                     f"{f.name.replace('_', '-')}" for f in fields(self)
                     if f.name in CTR_ONLY and getattr(self, f.name) != f.default]
            if given:
                raise UsageError(f"{', '.join(given)}: for the CTR models (--model wide_deep "
                                 "or deepfm); the rank stage takes --epochs, --lr, --hidden, "
                                 "--patience and --seed")
        if self.categorical not in ("hash", "vocab"):
            raise UsageError(f"unknown --categorical {self.categorical!r}: choose hash or vocab")
        if self.categorical == "hash" and self.hash_size * self.embedding_size > MAX_TABLE_VALUES:
            raise UsageError(f"--hash-size x --embedding-size must be at most "
                             f"{MAX_TABLE_VALUES:,} embedding values, about 2.5 GB of memory "
                             f"to train (got {self.hash_size:,} x {self.embedding_size:,})")
        if not 0 < self.val_ratio < 1:
            raise UsageError(f"--val-ratio must be between 0 and 1 (got {self.val_ratio})")
        positive("--lr", self.lr)
        positive("--baseline-lr", self.baseline_lr)
        self.hidden_sizes()


@stage(writes=("output",),
       into=("ctr_dir", "ctr.best", "ctr.checkpoint", "ctr.staging.best"),
       params=CtrParams)
def command(ctx: typer.Context, params: CtrParams, device: Device = "cpu",
            resume: Resume = False, nproc: Nproc = 1, fmt: Format = "auto") -> None:
    if not resume:
        params.check()
    paths = get_paths(ctx)
    if nproc > 1 and not resume and params.model == "rank":
        raise UsageError("the rank stage trains in one process (seconds on ml-1m): drop --nproc")
    if nproc > 1:  # the same command in N processes; rank 0 writes the files
        from rec.process.launch import run_stage

        metrics = run_stage(paths, "ctr-train", asdict(params), device, resume, nproc, paths.ctr)
    else:
        from rec.ctr import fit

        metrics = fit.train(paths, params, device, resume,
                            lambda saved: resumed_params(CtrParams, params, saved))
    emit_object(metrics, fmt)
