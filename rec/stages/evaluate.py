"""`rec evaluate`: the trained model on the saved validation split, next to baselines.

What is measured, and how, is rec.rank.evaluation's (the report, eval.json); this stage
shows its steps' progress, writes eval.json, records the run and prints the table.
"""

from __future__ import annotations

import os

# BLAS on one thread, as in rec.stages.recommend: evaluate scores two chunks of users at
# once in threads (rec.rank.evaluation.SCORING_THREADS), each on a core, and a second BLAS
# thread that must wait for a busy core only slows them; EASE's Cholesky inverse (scipy's
# own OpenBLAS, ml-1m) took 1.2 s on one thread and 2-21 s on two on this loaded 2-core
# machine. Each OpenBLAS reads the variable as it is loaded (numpy's and scipy's, just
# below); it is removed at once, so that no process started later inherits it.
_ONE_BLAS_THREAD = "OPENBLAS_NUM_THREADS" not in os.environ
if _ONE_BLAS_THREAD:
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
import numpy  # noqa: E402,F401
import scipy.linalg.lapack  # noqa: E402,F401
if _ONE_BLAS_THREAD:
    del os.environ["OPENBLAS_NUM_THREADS"]
import typer  # noqa: E402
from rich import box
from rich.table import Table

from rec.storage import manifest
from rec.storage.atomic import write_json
from rec.storage.unit import UNIT
from rec.console import log, show_table, steps, warn
from rec.results import emit, emit_object, resolve_format
from rec.datasets.contract import dataset_paths
from rec.rank import evaluation
from rec.rank.evaluation import KEYS, STEPS
from rec.rank.serving import NOT_EVALUATED
from rec.stages import get_paths, stage
from rec.stages.options import SEED_RANGE, Device, Format

HELP = ("Evaluate the trained model on the validation split: HR@10, NDCG@10, long tail, "
        "coverage, RMSE, MAE, against popularity, EASE and rating baselines.")


def model_rows(report: dict) -> list[tuple[str, dict]]:
    """(row label, metrics) of the table: the list recommend outputs first."""
    base = dict(report["baselines"])
    rows = []
    if report.get("ranked"):
        rows += [("rec ranked", report), ("two-tower", report["two_tower"])]
    else:
        rows.append(("rec " + report["match"], report))
    tuned = base.pop("ease_tuned", None)
    if tuned is not None:
        rows.append((f"ease λ{tuned['lambda']:g}", tuned))
    if "ease" in base:
        fixed = base.pop("ease")
        if tuned is None or tuned["lambda"] != 500:  # else the same model: one row
            rows.append(("ease λ500", fixed))
    return rows + list(base.items())


@stage(writes=("output",), into=("model_dir",))
def command(
    ctx: typer.Context,
    device: Device = "cpu",
    seed: int = typer.Option(0, "--seed", **SEED_RANGE,
                             help="Seed of the global_mean baseline's random order of movies "
                             "(its HR@10, NDCG@10, coverage)."),
    fmt: Format = "auto",
) -> None:
    paths = get_paths(ctx)
    with steps("evaluate", STEPS) as step:
        report = evaluation.evaluate(paths, device, seed, step)
    write_json(paths.eval_report, report)
    manifest.record(paths, "evaluate", {"device": device, "seed": seed},
                    # what the channels and the ranked list came from, or their absence:
                    # evaluate run before save-features or ctr-train is stale after them
                    inputs=dataset_paths(paths) + [paths.model.params,
                                                   paths.features_dir / UNIT,
                                                   paths.ctr.best / UNIT],
                    outputs=[paths.eval_report])
    rows = [{"model": name, **{k: metrics.get(k) for k in KEYS}} for name, metrics in
            model_rows(report)]
    for note in report["notes"]:  # a refused rank model is a warning, the rest progress
        (warn if note.startswith(NOT_EVALUATED) else log)(note)
    title = f"rec evaluate · {report['dataset']} · {report['validation_ratings']:,} " + \
        (f"to predict · {report['held_out_users']:,} held-out users (fold-in)"
         if report["split"] == "users" else
         f"validation ratings · {report['ranked_users']:,} ranked users")
    table = Table(title=title,
                  box=box.SIMPLE_HEAD, pad_edge=False)  # 80 columns wide
    for col in ["model"] + KEYS:
        table.add_column(col, justify="right" if col != "model" else "left", no_wrap=True)
    for row in rows:
        table.add_row(row["model"], *["" if row[k] is None else f"{row[k]:.4f}" for k in KEYS])
    if resolve_format(fmt) != "table":  # on a terminal stdout's table is the summary
        show_table(table)
    if fmt == "json":
        emit_object(report, "json")
    elif resolve_format(fmt) == "table":  # for people: 4 decimals, as the summary on stderr
        emit([{k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
              for row in rows], ["model"] + KEYS, fmt, title=title)
    else:  # TSV and CSV for scripts: every digit eval.json holds
        emit(rows, ["model"] + KEYS, fmt, title=title)
