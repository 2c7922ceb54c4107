"""`rec preprocess`: a downloaded dataset -> the .npy contract in output/dataset/.

The options, their checks and the summary; the arrays are rec/datasets/build.py's (dense
indices, title words, genres, the saved split), the files rec/datasets/contract.py's.
"""

from __future__ import annotations

import time
from typing import Optional

import typer
from rich.table import Table

from rec.console import log, show_table
from rec.datasets.build import build, read_raw, write_dataset
from rec.datasets.contract import dataset_paths
from rec.datasets import registry
from rec.datasets.registry import MARKER
from rec.datasets.splits import SPLITS
from rec.errors import UsageError
from rec.results import emit_object, resolve_format
from rec.stages import get_paths, stage
from rec.stages.options import SEED_RANGE, Format
from rec.storage import manifest
from rec.storage.unit import UNIT

HELP = "Parse a downloaded dataset into .npy arrays in output/dataset/, with a saved split."


@stage(writes=("output",), into=("dataset_dir",))
def command(
    ctx: typer.Context,
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Dataset folder under the data "
                                          "folder [default: the one downloaded last there]."),
    split: str = typer.Option("random", "--split", help="random | time (after a global cutoff to validation) | time-user (each user's "
                        "latest) | users (held-out users: "
                        "--val-ratio of the users, 80 % of their ratings given, the rest to predict)."),
    val_ratio: float = typer.Option(0.1, "--val-ratio", help="Share of ratings (of users with --split users) for validation."),
    seed: int = typer.Option(42, "--seed", **SEED_RANGE, help="Seed of the random and users splits."),
    fmt: Format = "auto",
) -> None:
    paths = get_paths(ctx)
    if split not in SPLITS:
        raise UsageError(f"unknown --split {split!r}: choose random, time, time-user or users")
    if not 0.0 < val_ratio < 1.0:
        raise UsageError(f"--val-ratio must be between 0 and 1 (got {val_ratio})")
    downloaded = manifest.default_dataset(paths, MARKER)
    if dataset is None:
        if downloaded:
            log(f"dataset: {downloaded} (the one this output folder's last `rec download` "
                f"fetched, or else the newest in {paths.data_dir}; --dataset picks another)")
        dataset = downloaded or "ml-1m"
    folder = paths.raw(dataset)
    if not folder.is_dir() and dataset not in registry.names():  # download would refuse it
        raise UsageError(f"unknown dataset {dataset!r} (and no folder {folder}): choose one of "
                         f"{', '.join(registry.names())}")
    if not folder.is_dir():
        raise UsageError(f"missing {folder}: run `rec download --dataset {dataset}` first")
    t0 = time.perf_counter()
    log(f"parsing {folder}")
    raw, read_as = read_raw(folder)
    arrays, vocab, report = build(raw, dataset, split, val_ratio, seed, reuse=True)
    del raw
    write_dataset(paths.dataset_dir, arrays, vocab)
    seconds = time.perf_counter() - t0
    manifest.record(paths, "preprocess", {"dataset": dataset, "split": split,
                                          "val_ratio": val_ratio, "seed": seed},
                    inputs=[folder], outputs=[*dataset_paths(paths), paths.dataset_dir / UNIT],
                    read_as={folder: read_as},
                    resolved={"dataset": downloaded or "ml-1m"})  # --dataset left out
    table = Table(title=f"preprocess {dataset}: {seconds:.2f}s")
    table.add_column("what")
    table.add_column("count", justify="right")
    for key, value in report.items():
        table.add_row(key.replace("_", " "), f"{value:,}")
    if resolve_format(fmt) != "table":  # on a terminal stdout's table is the summary
        show_table(table)
    emit_object({"dataset": dataset, "split": split, **report, "seconds": round(seconds, 3),
                 "output": str(paths.dataset_dir)}, fmt, title=f"preprocess {dataset}")

