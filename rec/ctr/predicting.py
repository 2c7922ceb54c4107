"""Click probabilities for `rec ctr-predict`, streamed a chunk at a time: raw Criteo lines
for a Criteo model (`criteo_rows`), USER MOVIE pairs for a MovieLens model (`movielens_rows`,
read by `read_pairs`), one row per scored line carrying its line number, in input order.

A bad line is a usage error naming it (exit 2), or, with `on_bad`, given to it and skipped;
input meant for the other kind of model says what this one reads (EXPECTS).
"""

from __future__ import annotations

import re
import sys
from typing import Iterator

import numpy as np

from rec.datasets.contract import id_key
from rec.errors import UsageError, shown
from rec.typed import clean

PAIR_CHUNK = 65536
SPLIT = re.compile(r"[\s,]+")
HAS_DIGIT = re.compile(r"[0-9]")
CRITEO_TABS = 38  # a Criteo line has 39 tab-separated fields (40 with its label)
# What each kind of model reads, for errors on input meant for the other kind.
EXPECTS = {
    "movielens": ("a MovieLens model: it scores USER MOVIE pairs (raw ids, one pair per line); "
                  "for Criteo lines train a Criteo model (`rec ctr-train --input FILE`)"),
    "criteo": ("a Criteo model: it scores raw Criteo lines (label, 13 integers, 26 hex "
               "categories, tab-separated; 39 columns with --no-label); for USER MOVIE pairs "
               "train a MovieLens model (`rec ctr-train --data movielens`)"),
}


def criteo_rows(model, transform, path: str, has_label: bool, batch: int,
                summary: dict, on_bad=None) -> Iterator[dict]:
    from rec.ctr import training as ct
    from rec.ctr.sources import Arrays
    from rec.datasets import criteo

    labels, probs = [], []
    for chunk in said_criteo(criteo.read_chunks(path, has_label=has_label, on_bad=on_bad)):
        arrays = Arrays({"ids": transform.ids(chunk), "dense": transform.dense(chunk)},
                           chunk.labels)
        p = ct.predict(model, arrays, batch)
        if has_label:
            labels.append(chunk.labels)
            probs.append(p)
            for line, y, prob in zip(chunk.line_numbers.tolist(), chunk.labels.tolist(), p.tolist()):
                yield {"line": line, "label": int(y), "probability": round(prob, 6)}
        else:
            for line, prob in zip(chunk.line_numbers.tolist(), p.tolist()):
                yield {"line": line, "probability": round(prob, 6)}
    if has_label and labels:
        summary["labels"], summary["probs"] = np.concatenate(labels), np.concatenate(probs)


def said_criteo(chunks: Iterator) -> Iterator:
    """The chunks; a malformed first line also says what a Criteo model reads (the input
    may be pairs meant for a MovieLens model)."""
    from rec.datasets.criteo import CriteoFormatError

    try:
        yield from chunks
    except CriteoFormatError as e:
        if e.line != 1:
            raise
        raise UsageError(f"{e}; the trained CTR model is {EXPECTS['criteo']}") from None


def read_pairs(stream, source: str, user_index: dict, movie_index: dict,
               on_bad=None) -> Iterator[tuple]:
    """Chunks of (line numbers, raw user ids, raw movie ids) read from `stream`: blank lines
    are skipped (the line numbers still count them), line 1 too when it `is_header`. A bad
    line is a usage error naming it as `source`:N ("stdin:3", as recommend's ids and --rated
    name theirs), or with `on_bad` given to it (its message) and skipped."""
    lines, users, movies = [], [], []
    for number, line in enumerate(stream, start=1):
        text = clean(line).strip()  # a byte-order mark would make line 1's user id no id
        if not text:
            continue
        where = f"{source}:{number}"
        if line.count("\t") >= CRITEO_TABS:
            raise UsageError(f"{where}: a Criteo line, but the trained CTR model is "
                             f"{EXPECTS['movielens']}")
        tokens = SPLIT.split(text)
        if number == 1 and is_header(tokens):
            continue
        u, m = (id_key(tokens[0]), id_key(tokens[1])) if len(tokens) >= 2 else (None, None)
        problem = (f"expected USER MOVIE (two ids), got {shown(text)}" if u is None or m is None
                   else f"unknown user id {shown(u, 40, quote=False)}" if u not in user_index
                   else f"unknown movie id {shown(m, 40, quote=False)}"
                   if m not in movie_index else None)
        if problem is not None:
            if on_bad is None:
                raise UsageError(f"{where}: {problem}")
            on_bad(f"{where}: {problem}")
            continue
        lines.append(number)
        users.append(u)
        movies.append(m)
        if len(lines) >= PAIR_CHUNK:
            yield lines, users, movies
            lines, users, movies = [], [], []
    if lines:
        yield lines, users, movies


def is_header(fields: list[str]) -> bool:
    """Whether line 1's fields are a header: two or more names, none with a digit in it
    (`user movie`, `user_id<TAB>movie_id`, `"userId","movieId","rating"`: columns after the
    pair are ignored, a header's too). Only such a line: a first line of `foo`, `1` or
    `1.5 2.5` is refused like any other, where taking whatever did not parse for a header
    dropped it unseen, a row short of one per line."""
    return len(fields) >= 2 and all(f and not HAS_DIGIT.search(f) for f in fields)


def movielens_rows(model, config: dict, paths, path: str, batch: int,
                   on_bad=None) -> Iterator[dict]:
    from rec.ctr import training as ct
    from rec.ctr.fields import MovieLensFields
    from rec.ctr.sources import Arrays
    from rec.datasets.contract import is_dataset, load_dataset

    ds = load_dataset(paths, mmap=True)
    if not is_dataset(config.get("data_fingerprint"), paths, ds):
        raise UsageError("output/ctr was trained on another output/dataset: "
                         "run `rec ctr-train --data movielens` again")
    fields = MovieLensFields.from_dataset(ds, config["features"].get("crosses", False))
    user_index = {str(u): i for i, u in enumerate(ds.vocab.user_ids)}
    movie_index = {str(m): i for i, m in enumerate(ds.vocab.movie_ids)}
    source = "stdin" if path == "-" else path
    if path == "-":
        from rec.typed import open_stdin

        stream = open_stdin()
    else:
        try:
            stream = open(path, encoding="utf-8", errors="replace")
        except OSError as e:
            raise UsageError(f"cannot read {path}: {e.strerror}")
    try:
        for lines, users, movies in read_pairs(stream, source, user_index, movie_index, on_bad):
            u = np.array([user_index[x] for x in users], dtype=np.int64)
            m = np.array([movie_index[x] for x in movies], dtype=np.int64)
            p = ct.predict(model, Arrays(fields.inputs(u, m), None), batch)
            for line, uid, mid, prob in zip(lines, users, movies, p.tolist()):
                yield {"line": line, "user": int(uid), "movie": int(mid),
                       "probability": round(prob, 6)}
    finally:
        if stream is not sys.stdin:
            stream.close()
