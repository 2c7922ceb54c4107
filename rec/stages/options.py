"""Options that several commands share, each declared once (typer `Annotated` aliases), and
`options_from`: a command whose options are a parameters dataclass's fields, so that a
training run's parameters are spelled once (the field, its option, its default)."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from typing import Annotated

import typer

from rec.errors import UsageError

OUTPUT, TRAINING, RUN = "Output", "Training", "Running"  # --help panels of the shared options
Format = Annotated[str, typer.Option(
    "--format", rich_help_panel=OUTPUT, help="auto | table | tsv | csv | json (auto: a table "
    "on a terminal, TSV in a pipe).")]
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


def positive(name: str, value: float) -> None:
    """A rate such as --lr: a positive finite number, else a usage error (exit 2)."""
    if not 0 < value < float("inf"):
        raise UsageError(f"{name} must be a positive number (got {value})")


def options_from(params_cls):
    """Decorator for `command(ctx, params, **own)`: the Typer command's options are
    params_cls's fields (each an Annotated option with its default), then the command's
    own parameters; the command receives the fields as one `params_cls` object."""
    hints = typing.get_type_hints(params_cls, include_extras=True)
    fields = dataclasses.fields(params_cls)

    def decorate(fn):
        ctx, _params, *own = inspect.signature(fn, eval_str=True).parameters.values()
        from_fields = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                                         default=f.default, annotation=hints[f.name])
                       for f in fields]

        @functools.wraps(fn)
        def command(ctx, **kwargs):
            params = params_cls(**{f.name: kwargs.pop(f.name) for f in fields})
            return fn(ctx, params, **kwargs)

        command.__signature__ = inspect.Signature(
            [ctx, *from_fields, *[p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]])
        return command

    return decorate
