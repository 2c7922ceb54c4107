"""`rec recommend` and `rec similar`: explained top-N from the saved vectors, numpy only.

Reads output/features (the vectors and scoring.json) and output/dataset (titles, genres, years,
demographics and every rating, so seen movies can be left out). Never imports paddle: the work
is one matrix product per chunk of users, in rec/twotower/recommending.py; reasons are in
rec/twotower/reasons.py. When output/ctr/model holds a rank model trained for these
features, the list is recall then rank (rec/rank/serving.py): the union of the channels'
candidates ordered by the rank stage, each reason naming the channels that found the movie;
--recall-only (and --explore, --include-seen) serve the two-tower's order alone.

Output goes through the shared RowWriter: a table on a terminal, TSV with a header when piped,
JSON lines with --format json. Every row carries the user (or the query movie), so the format
is the same for one id or thousands and `rec recommend - < ids.txt | sort ...` works.
Everything is validated before the first row is printed: a bad id or option prints one line
on stderr, exits 2 and leaves stdout empty.
"""

from __future__ import annotations

import os

# numpy's BLAS on one thread: recommend's products are small (1,024 users x the catalogue,
# and explain's few dozen movies a user), and a second BLAS thread that must wait for a busy
# core made `--all` 3.5x slower on a loaded 2-core machine (6.7 s against 1.9); the second
# core scores the next chunk instead (recommendation_blocks). OpenBLAS reads the variable
# when numpy first loads it, which the CLI does just below; it is removed again so that
# no process started later inherits it.
_ONE_BLAS_THREAD = "OPENBLAS_NUM_THREADS" not in os.environ
if _ONE_BLAS_THREAD:
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
import numpy as np  # noqa: E402
if _ONE_BLAS_THREAD:
    del os.environ["OPENBLAS_NUM_THREADS"]
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, List, Optional

import typer

from rec.console import warn

from rec.results import RowWriter
from rec.errors import UsageError
from rec.paths import Paths
from rec.stages import get_paths, preload, stage
from rec.stages.options import SEED_RANGE, RowsFormat
from rec.texttable import HIDE, KEEP, NOTE, SHORT, TITLE, TWO
from rec.twotower.titles import shown_title
from rec.typed import read_stdin

SCORING_THREADS = 2  # rank-stage blocks scored and explained at once (BLAS: one thread, above)
HELP = ("Top-N unseen movies for users, each with a short reason. USERS are user ids; - reads "
        "ids from stdin; --all does every user. stars: the predicted rating; score: the order, "
        "higher first (a logit: only differences count).")
SIMILAR_HELP = ("Movies closest to a movie in the taste space. MOVIE... are movie ids or title "
                "substrings (case-insensitive); - reads one per line from stdin.")
RECOMMEND_COLUMNS = ["user", "rank", "movie", "title", "year", "genres", "stars", "score",
                     "reason"]
SIMILAR_COLUMNS = ["query", "rank", "movie", "title", "year", "genres", "similarity"]
# The table on a terminal (80 columns): one user or query said once, the year only in the
# title, titles on up to two lines, genres cut short, the reason on a line of its own; TSV,
# CSV and JSON keep every column whole.
TABLE_LAYOUT = {"user": TITLE, "query": TITLE, "rank": KEEP, "movie": KEEP, "year": HIDE,
                "title": TWO, "genres": SHORT, "stars": KEEP, "score": KEEP,
                "similarity": KEEP, "reason": NOTE}


def _plain_id(raw: str):
    """Ids print as numbers in JSON when they are numbers."""
    from rec.twotower.recommending import INT_RE

    return int(raw) if INT_RE.fullmatch(raw) else raw


class FromStdin(str):
    """A token read from stdin, which knows its line (`where`, "stdin:3") for the message
    that refuses it, as --rated's do."""

    where: str


def expand_stdin(args: list[str], per_line: bool) -> list[str]:
    """The arguments with '-' replaced by stdin: whitespace-separated tokens, or whole lines
    (FromStdin, each with its line)."""
    out = []
    for arg in args:
        if arg != "-":
            out.append(arg)
            continue
        items = []
        for number, line in enumerate(read_stdin().splitlines(), 1):
            for item in [line.strip()] if per_line else line.split():
                if item:
                    items.append(FromStdin(item))
                    items[-1].where = f"stdin:{number}"
        if not items:
            raise UsageError("nothing to read on stdin (expected one id per line)")
        out.extend(items)
    return out


def check_options(top: int, year_from: Optional[int], year_to: Optional[int],
                  explore: int = 0, seed: Optional[int] = None) -> None:
    if top < 1:
        raise UsageError(f"--top must be at least 1 (got {top})")
    if not 0 <= explore <= top:
        raise UsageError(f"--explore must be between 0 and --top {top} (got {explore})")
    if seed is not None and seed < 0:
        raise UsageError(f"--seed must not be negative (got {seed})")
    for name, year in (("--year-from", year_from), ("--year-to", year_to)):
        if year is not None and year < 0:
            raise UsageError(f"{name} must not be negative (got {year})")
    if year_from is not None and year_to is not None and year_from > year_to:
        raise UsageError(f"--year-from {year_from} is after --year-to {year_to}")


def load_catalog(paths: Paths, ranks: bool = False):
    """The catalogue recommend and similar serve from; EASE's file (the rank stage's) is
    read only when the command `ranks`."""
    # imported here so `rec --help` does not pay for them
    from rec.datasets.contract import is_dataset, load_dataset
    from rec.twotower.features import earlier_model, features_rerun, load_features
    from rec.twotower.recommending import build_catalog

    # first: missing vectors is the likely error
    features = load_features(paths.features_dir, item_models=ranks)
    dataset = load_dataset(paths, mmap=True)
    saved_from = features.scoring.get("dataset_fingerprint")
    if saved_from is not None and not is_dataset(saved_from, paths, dataset):
        raise UsageError("output/features was saved from another output/dataset (preprocess "
                         f"ran since): {features_rerun(paths, dataset)}")
    stale = earlier_model(paths, features.scoring)
    if stale:  # the saved vectors still serve, consistently: the earlier model's
        warn(f"{stale}; until then these are that run's recommendations")
    return build_catalog(features, dataset)


def movie_cells(cat, genre_texts: dict, movie: int) -> dict:
    """The movie's columns; `genre_texts` caches the genre strings of movies already shown."""
    if movie not in genre_texts:
        genre_texts[movie] = cat.genre_text(movie)
    year = int(cat.years[movie])
    return {"movie": _plain_id(cat.features.movie_ids[movie]),
            "title": shown_title(cat.titles[movie]),
            "year": year if year >= 0 else None, "genres": genre_texts[movie]}


def capped(cat, count: int) -> int:
    """A --top or --candidates capped at the catalogue's size."""
    return min(count, len(cat.features.movie_ids))


class MovieCells:
    """movie_cells of each movie shown, built once per movie (as columns of a block)."""

    def __init__(self, cat):
        self.cat, self.cells, self.genre_texts = cat, {}, {}

    def columns(self, movies: list[int]) -> dict[str, list]:
        cells = self.cells
        for m in set(movies).difference(cells):
            cells[m] = movie_cells(self.cat, self.genre_texts, m)
        return {key: [cells[m][key] for m in movies] for key in ("movie", "title", "year", "genres")}


def recommendation_blocks(cat, users: np.ndarray, top: int, allowed: np.ndarray,
                          include_seen: bool, explore: int, seed: int, rank=None,
                          train_only: bool = False) -> Iterator[dict]:
    """Blocks of rows of RECOMMEND_COLUMNS (each a dict of columns, RowWriter.write_block),
    user by user, chunk_users(...) users a block. With `rank` ((Stack, RankModel):
    rec.rank.serving) the list is recall then rank, and each reason names the channel that
    ranks the movie highest."""
    from rec.twotower.reasons import explain
    from rec.twotower.recommending import (EXPLORE_POOL, chunk_ratings, chunk_users,
                                           explored_picks, recommend_chunk)

    def explained(chunk):
        ratings = chunk_ratings(cat, chunk, train_only)
        if rank is None:
            picks = recommend_chunk(cat, chunk, ratings, top, allowed, include_seen, explore,
                                    seed)
            return picks, explain(cat, chunk, picks, ratings)
        from rec.rank.serving import rank_picks

        if not explore:
            picks, found = rank_picks(cat, chunk, ratings, top, allowed, *rank)
        else:  # the random picks come from the ranked list's next best
            pool, found = rank_picks(cat, chunk, ratings, top * EXPLORE_POOL, allowed, *rank)
            picks, found = explored_picks(pool, found, chunk, top, explore, seed)
        return picks, [[f"{text} · found by {by}" for text, by in zip(row, found_row)]
                       for row, found_row in zip(explain(cat, chunk, picks, ratings), found)]

    movie_text = MovieCells(cat)
    short = 0
    size = chunk_users(cat.n_movies, ranked=rank is not None)
    chunks = [users[start:start + size] for start in range(0, len(users), size)]
    # The next chunks are scored and explained in other threads while this one is printed:
    # numpy's matrix and element-wise work releases the GIL, so the cores overlap them (the
    # rank stage's scoring, four fifths of the work, in as many threads as cores; explain
    # is safe there: rec.twotower.recommending.Catalog.group_stats). The two-tower's order
    # alone too: ml-1m --all 1.3-1.6 s against 1.8-2.1 s in one thread at load 1.3, the same
    # CPU (at load 3.7, with no core free, two had cost 6 % more CPU for no time gained).
    workers = max(1, min(SCORING_THREADS, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        ahead = deque(pool.submit(explained, c) for c in chunks[:workers])
        for i, chunk in enumerate(chunks):
            picks, reasons = ahead.popleft().result()
            if i + workers < len(chunks):
                ahead.append(pool.submit(explained, chunks[i + workers]))
            yield _block(cat, movie_text, chunk, picks, reasons)
            short += int((picks.counts < top).sum())
    if short:  # say what limits them: the catalogue, the filters if any, the seen movies
        n_allowed = int(allowed.sum())
        limit = (f"the filters allow {n_allowed:,} of the catalogue's {cat.n_movies:,} movies"
                 if n_allowed < cat.n_movies else f"the catalogue has {cat.n_movies:,} movies")
        seen = "" if include_seen else ", less each user's seen movies"
        warn(f"{short:,} of {len(users):,} users got fewer than {top:,} movies: {limit}{seen}")


def _block(cat, movie_text: MovieCells, chunk: np.ndarray, picks, reasons) -> dict:
    """A chunk's rows as columns: user by user, best first."""
    shown = np.arange(picks.movies.shape[1])[None, :] < picks.counts[:, None]
    at_user, at_rank = np.nonzero(shown)  # row-major: user by user, best first
    user_ids = [_plain_id(cat.features.user_ids[u]) for u in chunk.tolist()]
    scores = np.round(picks.scores[shown].astype(np.float64), 3) + 0.0  # -0.0 is 0.0
    score_cells = scores.tolist()
    for i in np.flatnonzero(~np.isfinite(scores)).tolist():  # the two-tower's fill after the
        score_cells[i] = None  # ranked candidates ran out: unscored, an empty cell, not -inf
    block = {"user": [user_ids[b] for b in at_user.tolist()],
             "rank": (at_rank + 1).tolist(), **movie_text.columns(picks.movies[shown].tolist()),
             # np.round of float32 values in float64 is round()'s: x * 10**d is exact
             "stars": np.round(picks.stars[shown].astype(np.float64), 2).tolist(),
             "score": score_cells,
             "reason": [text for row in reasons for text in row]}
    return block


@stage
def recommend_command(
    ctx: typer.Context,
    users: Optional[List[str]] = typer.Argument(None, help="User ids; - reads them from stdin.",
                                                metavar="USERS", show_default=False),
    top: int = typer.Option(10, "--top", "-n", help="Movies per user."),
    every_user: bool = typer.Option(False, "--all", help="Recommend for every user."),
    include_seen: bool = typer.Option(False, "--include-seen",
                                      help="Keep movies already rated (in the "
                                      "two-tower's order)."),
    explore: int = typer.Option(0, "--explore", help="Draw K of the N at random from the best "
                                "3N of the list, for freshness."),
    seed: Optional[int] = typer.Option(None, "--seed", **SEED_RANGE, help="Seed of --explore's draw."),
    genre: Optional[List[str]] = typer.Option(None, "--genre", "-g",
                                              help="Only movies of this genre (repeatable: any)."),
    year_from: Optional[int] = typer.Option(None, "--year-from", help="Only movies from this year on."),
    year_to: Optional[int] = typer.Option(None, "--year-to", help="Only movies up to this year."),
    recall_only: bool = typer.Option(False, "--recall-only", help="The two-tower's order "
                                     "alone. Without it the rank stage orders the list "
                                     "whenever `rec ctr-train` trained it for these "
                                     "features."),
    rated: Optional[str] = typer.Option(None, "--rated", help="Recommend for someone not in the "
                                        "dataset: a file of 'movie<TAB>rating[<TAB>time]' "
                                        "lines, or CSV (movie: an id or a title substring; "
                                        "- reads stdin).",
                                        rich_help_panel="New user (fold-in)"),
    like: Optional[List[str]] = typer.Option(None, "--like", help="A liked movie (the highest "
                                             "rating; repeatable).",
                                             rich_help_panel="New user (fold-in)"),
    dislike: Optional[List[str]] = typer.Option(None, "--dislike", help="A disliked movie (the "
                                                "lowest rating; repeatable).",
                                                rich_help_panel="New user (fold-in)"),
    gender: Optional[str] = typer.Option(None, "--gender", help="The new user's gender (M, F).",
                                         rich_help_panel="New user (fold-in)"),
    age: Optional[str] = typer.Option(None, "--age", help="The new user's age bucket (e.g. "
                                      "25-34, or the dataset's own code: ml-1m's 25).",
                                      rich_help_panel="New user (fold-in)"),
    occupation: Optional[str] = typer.Option(None, "--occupation", help="The new user's "
                                             "occupation (e.g. programmer, or ml-1m's code 12).",
                                             rich_help_panel="New user (fold-in)"),
    exclude: str = typer.Option("all", "--exclude", help="Movies left out as seen: all (every "
                                "rating the user has) or train (only the training part of the "
                                "split: the list as of the training cut, as evaluate ranks)."),
    fmt: RowsFormat = "auto",
) -> None:
    from rec.twotower.recommending import all_users, find_users, movie_mask

    if exclude not in ("all", "train"):
        raise UsageError(f"--exclude must be all or train (got {exclude!r})")
    check_options(top, year_from, year_to, explore, seed)
    new_user = rated is not None or bool(like) or bool(dislike)
    if new_user and (users or every_user):
        raise UsageError("--rated/--like/--dislike describe a new user: give no user ids or --all")
    if (gender or age or occupation) and not new_user:
        raise UsageError("--gender/--age/--occupation go with --rated, --like or --dislike")
    if not new_user and every_user == bool(users):
        raise UsageError("give user ids (- reads them from stdin) or --all, not both"
                         if every_user else "give user ids (- reads them from stdin), --all, "
                         "or a new user's movies (--rated FILE, --like MOVIE, --dislike MOVIE)")
    tokens = [] if every_user or new_user else expand_stdin(users, per_line=False)
    paths = get_paths(ctx)
    # the rank stage, when it is fresh (unseen movies only: --include-seen lists the two-tower's
    # order, and says so); without one, no EASE file nor scipy (ml-1m --all: 0.92 s -> 0.85)
    ranks = not (recall_only or include_seen) and rank_model_present(paths)
    if ranks:  # more than a few users: EASE's products through scipy, imported meanwhile
        from rec.rank.channels import FEW_USERS  # (the rank stage imports it anyway)
        if every_user or len(tokens) > FEW_USERS:
            preload("scipy.sparse")
    cat = load_catalog(paths, ranks)
    top = capped(cat, top)  # never more than the catalogue: memory follows it, not the ask
    explore = min(explore, top)
    if new_user:
        from rec.twotower.foldin import fold_in_user

        rows = np.array([fold_in_user(get_paths(ctx), cat, rated, like or [], dislike or [],
                                      gender, age, occupation)])
    elif every_user:
        rows = all_users(cat)
    elif len(rows := find_users(cat, tokens)) < len(tokens):  # a join expects a list per id
        warn(f"each user is listed once (repeated ids left out: {len(tokens) - len(rows):,})")
    allowed = movie_mask(cat, genre or [], year_from, year_to)
    if seed is None and explore:
        seed = int(np.random.SeedSequence().entropy % 2**63)  # fresh each run
    rank = rank_stage(paths, cat, len(rows)) if ranks else None
    if include_seen and not recall_only and rank_model_present(paths):
        warn("--include-seen lists the two-tower's order: the rank stage ranks unseen "
             "movies only")
    with RowWriter(RECOMMEND_COLUMNS, fmt, title=f"top {top}", layout=TABLE_LAYOUT) as out:
        for block in recommendation_blocks(cat, rows, top, allowed, include_seen, explore,
                                           seed, rank, exclude == "train"):
            out.write_block(block)


def rank_model_present(paths: Paths) -> bool:
    """Whether output/ctr/model holds a rank model (fresh or not: a cheap look)."""
    import json

    try:
        text = paths.ctr.config.read_text()
    except FileNotFoundError:
        return False
    except OSError:
        return True  # there but unreadable: the rank stage's loader says why
    try:
        return json.loads(text)["features"].get("kind") == "rank"
    except (ValueError, AttributeError, KeyError, TypeError):
        return True  # damaged: the rank stage's loader warns (two-tower order only: ...)


def rank_stage(paths: Paths, cat, n_users: int):
    """(Stack, RankModel) when output/ctr/model holds a rank model trained for these
    features and this dataset; else None, saying on stderr why when there is one that is
    not fresh (recommend then serves the two-tower's order). `n_users`: how many users it
    will rank (a few read a few rows of EASE's B, checked as read)."""
    from rec.errors import RecError
    from rec.rank.channels import FEW_USERS
    from rec.rank.serving import load_ranker, serving_stack

    try:
        model = load_ranker(paths, cat.features, cat.dataset)
    except RecError as e:  # a UsageError too: stale, damaged or not finite
        warn(f"two-tower order only: {e}")
        return None
    if model is None:
        return None
    return serving_stack(cat.features, cat.dataset, model.k, n_users <= FEW_USERS,
                         model.scale_k), model


@stage
def similar_command(
    ctx: typer.Context,
    movies: List[str] = typer.Argument(..., help="Movie ids or title substrings; - reads them "
                                       "from stdin, one per line.", metavar="MOVIE",
                                       show_default=False),
    top: int = typer.Option(10, "--top", "-n", help="Movies per query."),
    genre: Optional[List[str]] = typer.Option(None, "--genre", "-g",
                                              help="Only movies of this genre (repeatable: any)."),
    year_from: Optional[int] = typer.Option(None, "--year-from", help="Only movies from this year on."),
    year_to: Optional[int] = typer.Option(None, "--year-to", help="Only movies up to this year."),
    fmt: RowsFormat = "auto",
) -> None:
    from rec.twotower.recommending import movie_mask, similar_movies
    from rec.twotower.titles import find_movie

    check_options(top, year_from, year_to)
    queries = expand_stdin(movies, per_line=True)
    cat = load_catalog(get_paths(ctx))
    top = capped(cat, top)
    rows = list(dict.fromkeys(find_movie(cat, q) for q in queries))
    allowed = movie_mask(cat, genre or [], year_from, year_to)
    genre_texts = {}
    layout, title = TABLE_LAYOUT, "similar movies"
    if len(rows) == 1:  # the query said once, in the title ("· query 1" was its bare id)
        layout = {**TABLE_LAYOUT, "query": HIDE}
        title = (f"similar to movie {_plain_id(cat.features.movie_ids[rows[0]])}, "
                 f"{shown_title(cat.titles[rows[0]])}")
    with RowWriter(SIMILAR_COLUMNS, fmt, title=title, layout=layout) as out:
        for query in rows:
            found, sims = similar_movies(cat, query, top, allowed)
            for rank, (movie, sim) in enumerate(zip(found, sims), start=1):
                out.write({"query": _plain_id(cat.features.movie_ids[query]), "rank": rank,
                           **movie_cells(cat, genre_texts, movie), "similarity": round(float(sim), 4)})
