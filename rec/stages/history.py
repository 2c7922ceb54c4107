"""`rec history`: what users rated, from output/dataset alone (no model, no paddle).

To judge a list, read it beside the user's own ratings: `rec history 42` prints their
ratings best first (ties: the latest first), `--sort recent` latest first; `--top N` the
first N (0: all); `--part` the training part only (what `rec recommend --exclude train` and
evaluate's lists know of), or the evaluation part (what they are measured on). Rows go
through the one output mechanism (rec.results: a table on a terminal, TSV in a pipe).

    user  rank  movie  title  year  genres  stars  date (UTC, of the rating)  part
"""

from __future__ import annotations

import datetime
from typing import List, Optional

import numpy as np
import typer

from rec.errors import UsageError
from rec.results import RowWriter
from rec.stages import get_paths, stage
from rec.stages.options import RowsFormat
from rec.texttable import HIDE, KEEP, SHORT, TITLE, TWO

HELP = ("What users rated (output/dataset): best first, or --sort recent; --part train is "
        "what their recommendations were built from. USERS are user ids; - reads ids from "
        "stdin.")
COLUMNS = ["user", "rank", "movie", "title", "year", "genres", "stars", "date", "part"]
LAYOUT = {"user": TITLE, "rank": KEEP, "movie": KEEP, "title": TWO, "year": HIDE,
          "genres": SHORT, "stars": KEEP, "date": KEEP, "part": KEEP}
PARTS = ("all", "train", "eval")  # --part: which ratings


@stage
def command(
    ctx: typer.Context,
    users: List[str] = typer.Argument(..., help="User ids; - reads them from stdin.",
                                      metavar="USERS", show_default=False),
    top: int = typer.Option(20, "--top", "-n", help="Ratings per user (0: all)."),
    sort: str = typer.Option("stars", "--sort", help="stars (best first, then the latest) "
                             "or recent (the latest first)."),
    part: str = typer.Option("all", "--part", help="all, train (the split's training part: "
                             "what recommend --exclude train knows) or eval (also: validation; what "
                             "evaluate measures on: validation, or a held-out user's ratings "
                             "to predict)."),
    fmt: RowsFormat = "auto",
) -> None:
    from rec.datasets.contract import GIVEN, TRAIN, load_dataset
    from rec.stages.recommend import _plain_id, expand_stdin
    from rec.twotower.recommending import rows_of_user_ids
    from rec.twotower.titles import shown_title

    if top < 0:
        raise UsageError(f"--top must be 0 (all) or more (got {top})")
    if sort not in ("stars", "recent"):
        raise UsageError(f"unknown --sort {sort!r}: choose stars or recent")
    part = "eval" if part == "validation" else part  # what the README and split call it
    if part not in PARTS:
        raise UsageError(f"unknown --part {part!r}: choose all, train or eval (validation)")
    ds = load_dataset(get_paths(ctx), mmap=True)
    rows = rows_of_user_ids([str(u) for u in ds.vocab.user_ids],
                            expand_stdin(users, per_line=False))
    v = ds.vocab
    # the asked users' ratings alone (one pass; not a sort of all of them: ml-25m's 25M),
    # by user, each user's in the dataset's order
    asked = np.flatnonzero(np.isin(ds.rating_users, rows))
    asked = asked[np.argsort(ds.rating_users[asked], kind="stable")]
    starts = np.searchsorted(ds.rating_users[asked], rows, "left")
    ends = np.searchsorted(ds.rating_users[asked], rows, "right")
    names = {TRAIN: "train", GIVEN: "given"}
    genre_text = {}
    with RowWriter(COLUMNS, fmt, title="ratings", layout=LAYOUT) as out:
        for u, lo, hi in zip(rows.tolist(), starts.tolist(), ends.tolist()):
            mine = asked[lo:hi]
            if part != "all":  # train: what a list is built from (TRAIN, GIVEN); eval: the rest
                known = np.isin(ds.split[mine], (TRAIN, GIVEN))
                mine = mine[known if part == "train" else ~known]
            times = ds.rating_times[mine].astype(np.int64)
            keys = (-times,) if sort == "recent" else (-times, -ds.rating_values[mine])
            mine = mine[np.lexsort(keys)]  # the last key sorts first
            for rank, r in enumerate(mine[:top or None].tolist(), start=1):
                m = int(ds.rating_movies[r])
                if m not in genre_text:
                    genre_text[m] = "|".join(v.genres[g] for g in ds.movie_genres[m] if g)
                year = v.years[m]
                out.write({"user": _plain_id(str(v.user_ids[u])), "rank": rank,
                           "movie": _plain_id(str(v.movie_ids[m])),
                           "title": shown_title(v.titles[m]), "year": year or None,
                           "genres": genre_text[m],
                           "stars": round(float(ds.rating_values[r]), 2),
                           "date": date_of(int(ds.rating_times[r])),
                           "part": names.get(int(ds.split[r]), "eval")})


def date_of(timestamp: int) -> Optional[str]:
    """'2000-12-31' (UTC) of a rating's Unix time; None for none (0 or less)."""
    if timestamp <= 0:
        return None
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).strftime("%Y-%m-%d")
