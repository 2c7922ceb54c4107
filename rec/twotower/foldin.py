"""Fold-in: the vector of a user who is not in the dataset, from the movies they rated, in
numpy (no paddle, no retraining).

The default model's user tower is linear in its inputs (rec.models.recall_rank), so
save-features stores it as per-movie and per-demographic pieces (output/features/
fold_in.npz, rows in mov_feat.pkl's order) and a new user's vector is their sum: exactly
what the tower computes for a known user with the same ratings and demographics. Both heads
come out: the pick vector (recall) and the rating head's vector and bias (predicted stars).
`fold_in_user` makes `rec recommend --rated/--like/--dislike`'s new user from what was typed.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from rec.console import warn
from rec.errors import RecError, UsageError, shown
from rec.paths import Paths
from rec.typed import clean, decode, fold, read_stdin

FOLD_IN = "fold_in.npz"
KEYS = ("watched_pick", "watched_rating", "rated_rating", "bias_pick", "bias_rating",
        "gender_pick", "gender_rating", "age_pick", "age_rating", "occupation_pick",
        "occupation_rating")


def parts_file(parts: dict) -> dict[str, bytes]:
    """{FOLD_IN: npz bytes}: the file save_features writes with the vectors, in one unit."""
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **{k: parts[k] for k in KEYS})
    return {FOLD_IN: buffer.getvalue()}


def load_parts(folder: Path, n_movies: int, data: bytes | None) -> dict:
    """The fold-in pieces from `data`, the bytes of `folder`'s FOLD_IN as load_features read
    them with the vectors (Features.extra; None: the folder has none)."""
    import io

    path = Path(folder) / FOLD_IN
    if data is None:
        raise UsageError("a new user needs the default model's fold-in file "
                         f"({path} is missing): run `rec train` (without --match) and "
                         "`rec save-features`")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            parts = {k: np.asarray(z[k], np.float32) for k in KEYS}
    except (OSError, ValueError, KeyError) as e:
        raise RecError(f"{path} is damaged ({e}): run `rec save-features` again")
    if len(parts["watched_pick"]) != n_movies:
        raise UsageError(f"{path} does not match mov_feat.pkl: run `rec save-features` again")
    return parts


def user_vector(parts: dict, movies: np.ndarray, ratings: np.ndarray, global_mean: float,
                gender: int = 0, age: int = 0, occupation: int = 0) -> np.ndarray:
    """The saved-layout vector [u, 1, r_u, b_u, 1] of a user who rated `movies` (rows of
    mov_feat.pkl) with `ratings`; demographics are vocabulary indices, 0 = unknown."""
    movies = np.asarray(movies, np.int64)
    norm = np.float32(1.0 / np.sqrt(max(len(movies), 1)))
    centred = (np.asarray(ratings, np.float32) - np.float32(global_mean))[:, None]
    u = (norm * parts["watched_pick"][movies].sum(axis=0) + parts["gender_pick"][gender]
         + parts["age_pick"][age] + parts["occupation_pick"][occupation] + parts["bias_pick"])
    r = (norm * (parts["watched_rating"][movies] + centred * parts["rated_rating"][movies]).sum(axis=0)
         + parts["gender_rating"][gender] + parts["age_rating"][age]
         + parts["occupation_rating"][occupation] + parts["bias_rating"])
    one = np.ones(1, np.float32)
    return np.concatenate([u, one, r, one]).astype(np.float32)


NEW_USER = "new"  # the user column of a folded-in user's rows
DECIMAL_COMMA = re.compile(r"\d+,\d+")


# the column names a first line of --rated may give instead of a rating: movie, rating, time
RATED_HEADER = ({"movie", "movieid", "movie_id", "movie id", "title", "item", "id"},
                {"rating", "ratings", "stars", "score", "value"},
                {"time", "timestamp", "date"})


def is_rated_header(line: str) -> bool:
    """Whether a line is column names: 'movie<TAB>rating[<TAB>time]' (or with commas) in
    RATED_HEADER's words (any case), which no movie and rating line is (its rating is a
    number)."""
    fields = [f.strip().strip('"').casefold()
              for f in line.split("\t" if "\t" in line else ",")]
    return 2 <= len(fields) <= 3 and all(f in names for f, names in zip(fields, RATED_HEADER))


def _number(text: str) -> str | None:
    """`text` as a number's text (a decimal comma made a point), or None."""
    text = text.strip()
    if DECIMAL_COMMA.fullmatch(text):
        text = text.replace(",", ".")
    try:
        return text if np.isfinite(float(text)) else None
    except ValueError:
        return None


def comma_separated(line: str, csv_file: bool = False) -> str:
    """A line of 'movie,rating[,time]' (a spreadsheet's CSV: the title quoted where it holds
    a comma, or not: the rating is after the last comma) as its tab-separated fields; any
    other line as it is. In a file whose header is comma-separated (`csv_file`), every
    line; otherwise only one whose last word is not a rating: 'Toy Story 4,5' is Toy Story
    rated 4.5 (the decimal comma), as is 'Heat, 4,5'; 'Toy Story,5' and 'Toy Story, 5' are
    CSV."""
    if "\t" in line or "," not in line:
        return line
    head, _, last = line.rpartition(" ")
    if not csv_file and head.strip() and (
            DECIMAL_COMMA.fullmatch(last)
            or (_number(last) is not None and not head.rstrip().endswith(","))):
        return line
    if '"' in line:  # quoted: "American President, The (1995)",5 or Heat,"4,5"
        import csv

        fields = next(csv.reader([line], skipinitialspace=True))
    else:  # split at every comma, the title's own joined back as they were typed
        fields = line.split(",")
    while len(fields) > 2 and not fields[-1].strip():  # 'Heat,5,': an empty last column
        fields.pop()
    numbers = []  # the rating, and a time after it
    while len(numbers) < min(2, len(fields) - 1):
        number = _number(fields[-1 - len(numbers)])
        if number is None:
            break
        numbers.insert(0, number)
    if not numbers:
        return line
    return "\t".join([",".join(fields[:-len(numbers)]).strip(), *numbers])


def parse_rated(text: str, source: str, spaced: list | None = None) -> list[tuple[str, float, str]]:
    """Lines of `movie<TAB>rating` (movie: an id or a title substring), or
    `movie<TAB>rating<TAB>timestamp` (then, when every line has one, taken in time order:
    the order a new user's ratings count as rated in); blank lines and lines starting
    with # are skipped, and so is a first line of column names ('movie<TAB>rating', the
    header a spreadsheet writes: RATED_HEADER's names). Without a tab the last word is the
    rating (a decimal comma is a decimal point: 4,5 is 4.5), or, where it is not one, the
    line is `movie,rating[,time]` (a CSV line: comma_separated); each line whose rating
    follows a space is also appended to `spaced` as
    (the whole line, where), for the caller to check that the whole line is not a title
    itself ('Toy Story 2'). Each is (movie, rating, where: "SOURCE:LINE"); byte-order marks
    and Unicode forms are normalised first (rec.typed.clean)."""
    out, stamps, first, csv_file = [], [], True, False
    for number, line in enumerate(clean(text).splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if first and is_rated_header(line):
            first, csv_file = False, "\t" not in line  # 'movie,rating': every line CSV
            continue
        first = False
        line = comma_separated(line, csv_file)
        stamp = None
        fields = line.split("\t")
        if len(fields) == 3 and all(f.strip() for f in fields):  # movie, rating, time (a
            line, stamp_text = "\t".join(fields[:2]), fields[2]  # ratings file's own lines;
            try:  # 'Toy Story\t\t5', columns aligned by two tabs, is a movie and a rating)
                stamp = float(stamp_text)
            except ValueError:
                stamp = float("nan")
            if not np.isfinite(stamp):
                raise UsageError(f"{source}:{number}: the third column {shown(stamp_text)} is "
                                 "not a timestamp (expected 'movie<TAB>rating[<TAB>time]')")
        stamps.append(stamp)
        movie, _, rating = line.rpartition("\t") if "\t" in line else line.rpartition(" ")
        if DECIMAL_COMMA.fullmatch(rating):  # 4,5: how much of Europe writes 4.5
            rating = rating.replace(",", ".")
        try:
            value = float(rating)
        except ValueError:
            value = float("nan")
        if movie.strip() and "\t" in line and not np.isfinite(value):  # the rating is the fault
            raise UsageError(f"{source}:{number}: the rating {shown(rating.strip())} is not a "
                             f"number (expected 'movie<TAB>rating', e.g. 'Toy Story<TAB>5')")
        if not movie.strip() or not np.isfinite(value):
            raise UsageError(f"{source}:{number}: expected 'movie<TAB>rating' (or "
                             f"'movie,rating'), got {shown(line)}")
        out.append((movie.strip(), value, f"{source}:{number}"))
        if "\t" not in line and spaced is not None:
            spaced.append((line, f"{source}:{number}"))
    if stamps and None not in stamps:  # every line timed: rated in time order (the recency
        order = sorted(range(len(out)), key=stamps.__getitem__)  # feature's latest), stable
        out = [out[i] for i in order]
    return out


def profile(given: list[tuple[str, float, str]], find, scale: tuple[float, float],
            name) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(movie rows, ratings, notes) of a new user from what they gave: (query, rating,
    where) triples, each query resolved by `find` (query -> row). A rating outside the
    dataset's `scale` (lowest, highest) is refused. A movie given twice with two ratings
    (liked and disliked, or rated 4 then 2) contradicts itself and is refused, naming both
    places; given twice with the same rating, it counts once and a note says so. `name`
    (row -> title) words the messages."""
    low, high = scale
    rows: dict[int, tuple[float, str]] = {}
    notes = []
    for query, value, where in given:
        if not low <= value <= high:
            raise UsageError(f"{where}: rating {value:g} for {shown(query)} is outside this "
                             f"dataset's scale, {low:g} to {high:g}")
        try:
            row = find(query)
        except UsageError as e:  # not found, or ambiguous: a line of --rated says which
            raise UsageError(f"{where}: {e}" if ":" in where else str(e)) from None
        if row in rows:
            first, at = rows[row]
            if first != value:
                raise UsageError(f"{name(row)} is given twice with different ratings, "
                                 f"{first:g} ({at}) and {value:g} ({where}): give it once")
            notes.append(f"{name(row)} is given twice ({at} and {where}), both {value:g}: "
                         "counted once")
            continue
        rows[row] = (value, where)
    movies = np.fromiter(rows, np.int64, len(rows))
    ratings = np.array([value for value, _ in rows.values()], np.float32)
    return movies, ratings, notes


def demographic_index(kind: str, value: str | None, labels: list[str], codes: dict[str, int],
                      dataset: str) -> int:
    """A --gender/--age/--occupation value as a vocabulary index (0 = unknown): one of the
    dataset's labels (case and Unicode form ignored), or a number only where it is the
    dataset's own code (`codes`: ml-1m's 12 is programmer; ml-100k gives ages in years and
    has no occupation numbers). The error lists what it accepts."""
    if value is None:
        return 0
    text = fold(value).strip()
    for i, label in enumerate(labels):
        if i and fold(label) == text:
            return i
    if text in codes:
        return codes[text]
    choices = ", ".join(labels[1:])
    numbers = sorted(codes, key=int)
    if len(numbers) > 30:
        choices += f"; or a number from {numbers[0]} to {numbers[-1]}"
    elif numbers:
        choices += f"; or {dataset}'s code {', '.join(numbers)}"
    raise UsageError(f"unknown --{kind} {value!r} for {dataset}: choose from {choices}")


def add_user(cat, vector: np.ndarray, movies: np.ndarray, ratings: np.ndarray, age: int,
             occupation: int, gender: int = 0) -> int:
    """Append a folded-in user to the catalogue (vector, ratings, demographics) so that
    recommend, its filters and its reasons treat them like any user; return their row."""
    f = cat.features
    row = len(f.user_ids)
    f.users = np.vstack([f.users, vector[None, :]])
    f.user_ids = [*f.user_ids, NEW_USER]
    cat.rating_user = np.r_[cat.rating_user, np.full(len(movies), row)]
    cat.rating_movie = np.r_[cat.rating_movie, movies]
    cat.rating_value = np.r_[cat.rating_value, np.asarray(ratings, np.float32)]
    cat.rating_train = np.r_[cat.rating_train, np.ones(len(movies), bool)]
    # their ratings count as rated in the order given, the last the latest (the rank
    # stage's EASE from the recent movies), after everything in the dataset
    latest = int(cat.rating_time.max(initial=0))
    cat.rating_time = np.r_[cat.rating_time, latest + 1 + np.arange(len(movies), dtype=np.int64)]
    cat.user_gender = np.r_[cat.user_gender, gender]
    cat.user_age = np.r_[cat.user_age, age]
    cat.user_occupation = np.r_[cat.user_occupation, occupation]
    known = age > 0 and occupation > 0 and cat.has_demographics
    group = age * len(cat.occupation_labels) + occupation if known else -1
    cat.user_group = np.r_[cat.user_group, group]
    return row


def fold_in_user(paths: Paths, cat, rated: str | None, like: list[str], dislike: list[str],
                 gender: str | None, age: str | None, occupation: str | None) -> int:
    """`rec recommend --rated/--like/--dislike`'s new user, appended to `cat`
    (rec.twotower.recommending.Catalog); return their row. Their vector is folded in from
    the movies they rated (a file of `movie<TAB>rating` lines, - for stdin), on the
    dataset's own scale (--like its highest rating, --dislike its lowest), with the
    demographics it has, given as its labels or its own codes. Notes on what was given
    (a movie given twice) go to stderr."""
    from rec.datasets.contract import demographic_codes
    from rec.twotower import kinds
    from rec.twotower.titles import find_movie, index as title_index, shown_title

    if not kinds.kind(cat.features.scoring["match"]).folds_in:
        raise UsageError("a new user needs the default model: run `rec train` (without "
                         "--match) and `rec save-features`")
    vocab = cat.dataset.vocab
    given_demographics = [f"--{k}" for k, v in (("gender", gender), ("age", age),
                                                ("occupation", occupation)) if v is not None]
    if given_demographics and not cat.has_demographics:
        raise UsageError(f"{vocab.dataset} has no demographics (gender, age, occupation): "
                         f"leave out {', '.join(given_demographics)}")
    given = []
    if rated is not None:
        if rated == "-":
            text, source = read_stdin(), "stdin"
        else:
            try:
                text, source = decode(Path(rated).read_bytes(), f"--rated {rated}"), rated
            except OSError as e:
                raise UsageError(f"cannot read --rated {rated}: {e.strerror or e}")
        spaced = []
        given += parse_rated(text, source, spaced)
        for line, where in spaced:  # 'Toy Story 2': Toy Story rated 2, or a title?
            if title_index(cat).named(line):
                raise UsageError(f"{where}: {shown(line)} is a movie title too: put a tab "
                                 "between the movie and its rating")
    low, high = cat.dataset.rating_range
    given += [(m, high, "--like") for m in like] + [(m, low, "--dislike") for m in dislike]
    if not given:
        raise UsageError(f"--rated {rated}: no ratings in it (lines of 'movie<TAB>rating')")
    movies, ratings, notes = profile(given, lambda q: find_movie(cat, q), (low, high),
                                     lambda row: shown_title(cat.titles[row]))
    for note in notes:
        warn(note)
    parts = load_parts(paths.features_dir, cat.n_movies, cat.features.extra.get(FOLD_IN))
    codes = demographic_codes(vocab)
    g = demographic_index("gender", gender, cat.gender_labels, {}, vocab.dataset)
    a = demographic_index("age", age, cat.age_labels, codes["age"], vocab.dataset)
    o = demographic_index("occupation", occupation, cat.occupation_labels,
                          codes["occupation"], vocab.dataset)
    vector = user_vector(parts, movies, ratings, cat.features.scoring["offset"], g, a, o)
    return add_user(cat, vector, movies, ratings, a, o, g)
