"""`rec ctr-predict`: per-sample click probabilities from output/ctr's best model, streamed.

Input (a file or any readable path, `<(zcat x.gz)` too; stdin with `-`, the default),
chosen by what the model was trained on:
  criteo     raw Criteo lines (with a label column, or 39 columns with --no-label);
             .gz files work
  movielens  one pair per line: USER MOVIE (raw ids, separated by spaces, tabs or a comma;
             further columns are ignored); line 1 is skipped when it is a header: names
             without digits (`user movie`, `user_id<TAB>movie_id`), any other line that
             does not start with two ids is a bad line

Output: one row per input line, in input order, each carrying the input's line number so
scores join back to the lines (`paste`, `join`, or a key in JSON):
  criteo     line, label, probability   (label omitted with --no-label)
  movielens  line, user, movie, probability
TSV with a header by default (--format json for JSON lines). Lines are read, checked and
scored a chunk at a time, so the input may be larger than memory; a bad line stops the
command with one line on stderr naming it (exit 2), after the rows of earlier chunks (the
lines of its own chunk are not scored). `--skip-bad` warns once per bad line (naming it)
and scores the others instead, then says how many it skipped. With labels, the AUC and log
loss over all lines go to stderr at the end.
"""

from __future__ import annotations

import typer

from rec.console import log, warn

from rec.results import RowWriter
from rec.errors import UsageError
from rec.stages import get_paths, stage
from rec.stages.options import Device, RowsFormat
from rec.typed import check_readable

HELP = ("Click probabilities from the trained CTR model, one row per input line in order "
        "(TSV on stdout): raw Criteo lines, or USER MOVIE pairs for a MovieLens model. "
        "INPUT is a file (a pipe or <(...) too); - (default) reads stdin.")


@stage
def command(
    ctx: typer.Context,
    input: str = typer.Argument("-", metavar="INPUT",
                                help="Criteo-format file for a Criteo model, USER MOVIE lines "
                                "for a MovieLens model (line 1 may be a header of names "
                                "without digits, e.g. 'user movie'); - reads stdin."),
    no_label: bool = typer.Option(False, "--no-label",
                                  help="Criteo: the lines have no label column (39 columns)."),
    device: Device = "cpu",
    batch_size: int = typer.Option(32768, "--batch-size", min=1),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Warn about each malformed or "
                                  "unknown line and score the others (default: stop at it)."),
    fmt: RowsFormat = "tsv",
) -> None:
    from rec.ctr import training as ct
    from rec.ctr.predicting import criteo_rows, movielens_rows
    from rec.metrics import logloss
    from rec.engine.runtime import setup_device

    paths = get_paths(ctx)
    if input != "-":
        check_readable(input)  # before the model loads: a typo'd path fails at once
    setup_device(device)  # first: the model is built on the device it then runs on
    model, config, transform = ct.load_model(paths)
    kind = config["features"]["kind"]
    summary: dict = {}
    skipped: list[str] = []

    def on_bad(message: str) -> None:
        skipped.append(message)
        warn(f"{message}: skipped (--skip-bad)")

    on_bad = on_bad if skip_bad else None
    if kind == "criteo":
        columns = ["line", "probability"] if no_label else ["line", "label", "probability"]
        rows = criteo_rows(model, transform, input, not no_label, batch_size, summary, on_bad)
    else:
        if no_label:
            raise UsageError("--no-label is for Criteo files; this model is for MovieLens pairs")
        columns = ["line", "user", "movie", "probability"]
        rows = movielens_rows(model, config, paths, input, batch_size, on_bad)
    n = 0
    with RowWriter(columns, fmt, title="click probabilities") as out:
        for row in rows:
            out.write(row)
            n += 1
    if skipped:
        warn(f"{len(skipped):,} bad line{'s' * (len(skipped) != 1)} skipped, {n:,} scored")
    if "labels" in summary:
        y, p = summary["labels"], summary["probs"]
        log(f"{n:,} lines: {auc_text(y, p)}, log loss {logloss(y, p):.4f}")


def auc_text(labels, probs) -> str:
    """"AUC 0.7312", or why there is none: AUC compares clicks with non-clicks, and input
    of one class has no pair to compare (rec.metrics.auc's nan)."""
    import math

    from rec.metrics import auc

    value = auc(labels, probs)
    if not math.isnan(value):
        return f"AUC {value:.4f}"
    return f"AUC undefined (every label is {int(labels[0])}; it needs both 0 and 1)"
