"""Options that several commands share, each declared once (typer `Annotated` aliases), and
`resumed_params`: a --resume run's parameters (a command whose options are a parameters
dataclass's fields declares it with `rec.stages.stage(params=...)`)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Optional

import typer

from rec.errors import UsageError

OUTPUT, TRAINING, RUN = "Output", "Training", "Running"  # --help panels of the shared options
Format = Annotated[str, typer.Option(
    "--format", rich_help_panel=OUTPUT, help="auto | table | tsv | csv | json (auto: a table "
    "on a terminal, TSV in a pipe).")]
# A command printing many rows: its JSON is one object a line (evaluate's, one object)
RowsFormat = Annotated[str, typer.Option(
    "--format", rich_help_panel=OUTPUT, help="auto | table | tsv | csv | json (auto: a table "
    "on a terminal, TSV in a pipe; json: JSON lines, one object per row).")]
NoHeader = Annotated[bool, typer.Option("--no-header", rich_help_panel=OUTPUT,
                                        help="TSV and CSV without the header line.")]
Device = Annotated[str, typer.Option("--device", rich_help_panel=RUN,
                                     help="cpu, gpu or gpu:N.")]
Epochs = Annotated[int, typer.Option("--epochs", min=1, rich_help_panel=TRAINING,
                                     help="Epochs in total.")]
Dropout = Annotated[float, typer.Option("--dropout", rich_help_panel=TRAINING, min=0.0, max=0.9)]
Resume = Annotated[bool, typer.Option("--resume", rich_help_panel=TRAINING,
                                      help="Continue from the last checkpoint.")]
# Every --seed: what numpy and paddle accept, refused by the parser otherwise (exit 2).
SEED_RANGE = {"min": 0, "max": 2**32 - 1}
Nproc = Annotated[int, typer.Option(
    "--nproc", min=1, rich_help_panel=RUN,
    help="Data-parallel processes on this host (paddle.distributed.launch).")]

Threads = Annotated[Optional[int], typer.Option(
    "--threads", min=1, max=1024, rich_help_panel=RUN, show_default=False,
    help="CPU threads of each process (default: this machine's cores, shared by --nproc; "
    "1 is faster when other work keeps the cores busy).")]


def positive(name: str, value: float) -> None:
    """A rate such as --lr: a positive finite number, else a usage error (exit 2)."""
    if not 0 < value < float("inf"):
        raise UsageError(f"{name} must be a positive number (got {value})")


def resumed_params(params_cls, given, saved: dict, keep: tuple[str, ...] = ("epochs",)):
    """The parameters of a --resume run: the checkpoint's, with `keep` taken from the
    command line. An option set on the command line to something other than both its
    default and the checkpoint's value is refused (exit 2), listing each difference: a
    resumed run cannot change its architecture or training."""
    defaults = {f.name: f.default for f in dataclasses.fields(params_cls)}
    differences = [
        f"--{name.replace('_', '-')} {value} (the checkpoint's: {saved[name]})"
        for name, value in vars(given).items()
        if name not in keep and name in saved and value != defaults.get(name)
        and value != saved[name]]
    if differences:
        raise UsageError("--resume continues the checkpoint's run, which has other options: "
                         + "; ".join(differences)
                         + ": drop them, or train from scratch (without --resume)")
    return params_cls(**{**saved, **{name: getattr(given, name) for name in keep}})
