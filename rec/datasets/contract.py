"""The preprocessed dataset contract: the files `rec preprocess` writes to output/dataset/.

Every later stage (train, evaluate, save-features, recommend, ctr-*) reads these and nothing
under data/. Row i of a feature table describes dense index i; raw ids live in vocab.json.

    users.npy         int64 (U, 4)  [user index, gender, age bucket, occupation]; 0 = unknown
    movie_genres.npy  int64 (M, G)  genre ids, left-aligned, padded with 0 (0 reserved)
    movie_titles.npy  int64 (M, T)  title word ids, left-aligned, padded with 0 (0 reserved)
    rating_users.npy  int32 (N,)    user index of each rating
    rating_movies.npy int32 (N,)    movie index of each rating
    rating_values.npy float32 (N,)  the rating (ml-latest-small has half stars)
    rating_times.npy  int64 (N,)    unix timestamp
    split.npy         uint8 (N,)    0 = train, 1 = validation, 2 = given (fixed by preprocess)
    vocab.json        id maps and labels: see `Vocab`

The split codes: TRAIN (0) ratings are what training learns from; VAL (1) ratings are what
evaluation predicts; GIVEN (2) exists only in a held-out-users split (`--split users`): the
known ratings of a user that training never sees, the input of their fold-in, whose VAL
ratings ("to predict") are the targets. vocab.json's split info names the codes there.

Unknown demographic values (ml-latest-small has none at all) are index 0, labelled "unknown".

The folder is one unit (rec.storage.unit): unit.json holds a run id, and the sha256 and
size of every file. What a reader checks (`load_dataset`, `load_vocab`), and why:
    - unit.json is there: an output/dataset from an older rec (none) is refused in one line,
      "run `rec preprocess` again", like any folder that is not one run (exit 2);
    - it lists every file of the contract;
    - vocab.json and split.npy by their sha256 (vocab.json as read; split.npy is 1 byte a
      rating, read whole anyway for the dataset's fingerprint): they are what a preprocess
      run with other options (--split, --seed, --val-ratio) changes, always at the same size;
    - the other arrays by their size alone. Hashing them would read the whole dataset on
      every command (seconds at 25M ratings) and defeat mmap=True. They depend on the raw
      dataset alone, not on the options: another run's array of this run's size comes, but
      for a coincidence of counts, from the same raw data, and then holds the same bytes; a
      truncated or half-copied array has another size (and the rows of every array must fit
      vocab.json's ids). Their sha256 stay in unit.json for a full check; `rec status` does
      one through the manifest (each file's fingerprint, hashed again whenever its size or
      mtime changed).
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rec.errors import RecError, UsageError
from rec.paths import SPLIT, VOCAB, Paths, downloaded, reading
from rec.storage import unit

FORMAT_VERSION = 1
ARRAY_FILES = ["users.npy", "movie_genres.npy", "movie_titles.npy", "rating_users.npy",
               "rating_movies.npy", "rating_values.npy", "rating_times.npy", SPLIT]
ALL_FILES = ARRAY_FILES + [VOCAB]
SIZED = tuple(name for name in ARRAY_FILES if name != SPLIT)  # checked by size (docstring)
RUN = "rec preprocess"

TRAIN, VAL, GIVEN = 0, 1, 2
# A rating from which a movie counts as liked: relevant for HR@k / NDCG@k, a click (label 1)
# in MovieLens-as-CTR, a "rated highly" movie in the reasons.
RELEVANT = 4.0
USER_COLUMNS = ["user", "gender", "age", "occupation"]

# Labels used by MovieLens-1M (and mapped onto by the other formats where possible).
GENDERS = ["unknown", "M", "F"]
ML1M_AGES = {1: "Under 18", 18: "18-24", 25: "25-34", 35: "35-44", 45: "45-49", 50: "50-55",
             56: "56+"}
AGES = ["unknown"] + list(ML1M_AGES.values())
OCCUPATIONS = ["unknown", "other", "academic/educator", "artist", "clerical/admin",
               "college/grad student", "customer service", "doctor/health care",
               "executive/managerial", "farmer", "homemaker", "K-12 student", "lawyer",
               "programmer", "retired", "sales/marketing", "scientist", "self-employed",
               "technician/engineer", "tradesman/craftsman", "unemployed", "writer"]
GENRES = ["Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
          "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
          "Thriller", "War", "Western"]


@dataclass
class Vocab:
    """vocab.json: raw ids in index order, labels for every categorical value."""

    dataset: str
    user_ids: list[int]
    movie_ids: list[int]
    titles: list[str]  # full titles as published, e.g. "Toy Story (1995)"
    years: list[int | None]
    genres: list[str]  # genres[0] == "<pad>"
    title_words: list[str]  # title_words[0] == "<pad>"
    genders: list[str]
    ages: list[str]
    occupations: list[str]
    has_demographics: bool
    split: dict
    # The dataset's own scales (recorded by preprocess since they were added; `scales` gives
    # them for a vocab.json written before): its lowest and highest rating, and the numbers
    # its files use for ages and occupations ({"age": {code: index}, "occupation": ...}).
    rating_range: list | None = None
    codes: dict | None = None

    def to_json(self) -> dict:
        return {"format": FORMAT_VERSION, **self.__dict__}

    @classmethod
    def from_json(cls, obj: dict) -> "Vocab":
        if obj.get("format") != FORMAT_VERSION:
            raise UsageError("output/dataset was written by another rec version: "
                             "run `rec preprocess` again")
        fields = {k: v for k, v in obj.items() if k != "format"}
        return cls(**fields)


ML1M_CODES = {"age": {str(code): i + 1 for i, code in enumerate(ML1M_AGES)},
              "occupation": {str(code): code + 1 for code in range(len(OCCUPATIONS) - 1)}}


def demographic_codes(vocab: Vocab) -> dict[str, dict[str, int]]:
    """The numbers a person may give for --age and --occupation: the dataset's own codes
    (ml-1m's 25 = 25-34 and 12 = programmer; ml-100k's ages in years, and no occupation
    numbers). A vocab.json from before they were recorded: ml-1m's for an ml-1m layout."""
    if vocab.codes is not None:
        return {kind: dict(vocab.codes.get(kind) or {}) for kind in ("age", "occupation")}
    ml1m = (vocab.has_demographics and vocab.dataset != "ml-100k"
            and vocab.occupations == OCCUPATIONS and vocab.ages == AGES)
    return ML1M_CODES if ml1m else {"age": {}, "occupation": {}}


@dataclass
class Dataset:
    vocab: Vocab
    users: np.ndarray
    movie_genres: np.ndarray
    movie_titles: np.ndarray
    rating_users: np.ndarray
    rating_movies: np.ndarray
    rating_values: np.ndarray
    rating_times: np.ndarray
    split: np.ndarray
    # (vocab.json's, split.npy's) rec.storage.manifest fingerprints as read, for `is_dataset`
    fingerprints: tuple[str, str] | None = None

    @property
    def n_users(self) -> int:
        return int(self.users.shape[0])

    @property
    def n_movies(self) -> int:
        return int(self.movie_genres.shape[0])

    @property
    def rating_range(self) -> tuple[float, float]:
        """(lowest, highest) rating of the dataset's scale: ml-latest's 0.5 to 5, ml-1m's 1 to
        5; for a vocab.json from before it was recorded, the ratings' own extremes."""
        if self.vocab.rating_range:
            low, high = self.vocab.rating_range
        elif len(self.rating_values):
            low, high = np.min(self.rating_values), np.max(self.rating_values)
        else:
            low, high = 1.0, 5.0
        return float(low), float(high)

    def part(self, which: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(users, movies, ratings) of the train (0), validation (1) or given (2) part."""
        mask = self.split == which
        return self.rating_users[mask], self.rating_movies[mask], self.rating_values[mask]

    def train_val(self) -> tuple[tuple, tuple]:
        """Both parts, for training on one and validating on the other; either one empty
        is a usage error (exit 2)."""
        train, val = self.part(TRAIN), self.part(VAL)
        if len(train[0]) == 0 or len(val[0]) == 0:
            if "tuning" in (self.vocab.split or {}):  # rec.datasets.tuning's view of it
                whole = "users" if self.vocab.split["tuning"].get("kind") == "users" else \
                    "ratings"  # --split users: the slice holds out whole training users
                raise UsageError(
                    f"too few training {whole} for the tuning slice every choice is made on "
                    f"(a tenth of them) and the rest: use a larger dataset, or a smaller "
                    "--val-ratio in `rec preprocess`")
            raise UsageError("the saved split has an empty train or validation part: "
                             "run `rec preprocess` with another --val-ratio")
        return train, val

    def known(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(users, movies, ratings) a user tower may read as a user's history: the training
        ratings and, in a held-out-users split, the held-out users' given ones (never a
        training target: training iterates over users with training ratings only)."""
        mask = self.split != VAL
        return self.rating_users[mask], self.rating_movies[mask], self.rating_values[mask]

    def known_of(self, users: np.ndarray) -> tuple[np.ndarray, ...]:
        """known()'s ratings of `users` (sorted, distinct indices) and their times, as
        (row of the user in `users`, movie, rating, time): each user's in the dataset's
        order, users in turn. An index of the known ratings by user is built on the first
        call (one stable sort) and kept while `split` is the same array, so a chunk of users
        costs its own ratings, not a pass over all of them (ml-25m: 25M ratings, 1,200
        chunks of users in evaluate's rank stage)."""
        index = getattr(self, "_known_index", None)
        if index is None or index[0] is not self.split:
            mask = self.split != VAL
            at = np.flatnonzero(mask)
            at = at[np.argsort(self.rating_users[at], kind="stable")]
            starts = np.searchsorted(self.rating_users[at], np.arange(self.n_users + 1))
            index = (self.split, at, starts)
            self._known_index = index
        _, at, starts = index
        users = np.asarray(users, np.int64)
        counts = starts[users + 1] - starts[users]
        rows = np.repeat(np.arange(len(users)), counts)
        first = np.repeat(starts[users] - np.cumsum(counts) + counts, counts)
        picked = at[first + np.arange(len(rows))]
        return (rows, self.rating_movies[picked], self.rating_values[picked],
                self.rating_times[picked])

    def held_out_users(self) -> np.ndarray:
        """The users of a held-out-users split (those with given ratings), sorted; empty for
        the other splits."""
        return np.unique(self.rating_users[self.split == GIVEN])


_ID = re.compile(r"(-?)([0-9]+)")


def id_key(text: str) -> str | None:
    """How a user or movie id typed by someone is looked up among the vocabulary's ids
    (str of an integer): "007" is "7", "-0" is "0"; None when it is not a whole number.
    Without int(), so a 5000-digit id is looked up, and not found, as fast as "7"."""
    match = _ID.fullmatch(text.strip())
    if match is None:
        return None
    sign, digits = match.groups()
    digits = digits.lstrip("0") or "0"
    return digits if digits == "0" else sign + digits


def dataset_paths(paths: Paths) -> list[Path]:
    return [paths.dataset_file(name) for name in ALL_FILES]


def dataset_identity(paths: Paths) -> str:
    """Identity of output/dataset as a whole (its ids and titles, and its split). Every stage
    that reads it records this, so that a later reader can tell it was preprocessed again."""
    from rec.storage.manifest import fingerprint

    return f"{fingerprint(paths.vocab)}-{fingerprint(paths.split)}"


def is_dataset(recorded: str | None, paths: Paths, dataset: "Dataset | None" = None) -> bool:
    """Whether an artifact's recorded identity is output/dataset's: that of `dataset` as it
    was read, when given (the folder may have been replaced since). Artifacts written before
    the identity covered vocab.json recorded the split's fingerprint alone: still accepted."""
    from rec.storage.manifest import fingerprint

    if dataset is not None and dataset.fingerprints is not None:
        vocab, split = dataset.fingerprints
        return recorded is not None and recorded in (f"{vocab}-{split}", split)
    return recorded is not None and recorded in (dataset_identity(paths), fingerprint(paths.split))


def load_vocab(paths: Paths) -> Vocab:
    """vocab.json, checked against the unit (the module's docstring) like the whole dataset."""
    return unit.read(paths.dataset_dir, RUN, lambda snapshot: _load_vocab(snapshot)[0],
                     SIZED, tuple(ALL_FILES))


def _require(snapshot, names: list[str]) -> None:
    _require_folder(snapshot)
    for name in names:
        if not snapshot.is_file(name):
            raise UsageError(f"missing {snapshot.path / name}: run `rec preprocess` first")


def _require_folder(snapshot) -> None:
    """The dataset folder missing whole: nothing preprocessed, and maybe nothing downloaded
    (`rec download` first where the output folder's manifest records none)."""
    if not snapshot.path.is_dir():
        first = "`rec preprocess`" if downloaded(snapshot.path.parent) else \
            "`rec download` and `rec preprocess`"
        raise UsageError(f"missing {snapshot.path}: run {first} first")


def _load_vocab(snapshot) -> tuple[Vocab, str]:
    """vocab.json from the folder `snapshot`, and its fingerprint (rec.storage.manifest)."""
    from rec.storage.manifest import file_fingerprint

    path = snapshot.path / VOCAB
    _require_folder(snapshot)
    if not snapshot.is_file(VOCAB):
        raise UsageError(f"missing {path}: run `rec preprocess` first")
    with reading(path, "rec preprocess"):
        data = snapshot.read_bytes(VOCAB)
        obj = json.loads(data.decode("utf-8"))
        if not isinstance(obj, dict):
            raise ValueError(f"expected a JSON object, found {type(obj).__name__}")
        return Vocab.from_json(obj), file_fingerprint(io.BytesIO(data))


def load_dataset(paths: Paths, mmap: bool = False) -> Dataset:
    """Read the whole contract back, every file from the same preprocess run (rec.storage.unit:
    a preprocess that swaps the folder meanwhile makes it read the new one whole; what is
    checked against unit.json is in the module's docstring); exit 2 naming `rec preprocess`
    if anything is missing or from another run, 1 (naming it too) if a file is damaged or
    the files do not fit together."""
    return unit.read(paths.dataset_dir, RUN, lambda snapshot: _load_dataset(snapshot, mmap),
                     SIZED, tuple(ALL_FILES))


def _load_dataset(snapshot, mmap: bool) -> Dataset:
    from rec.storage.manifest import file_fingerprint

    folder = snapshot.path
    _require(snapshot, ALL_FILES)
    vocab, vocab_fingerprint = _load_vocab(snapshot)
    arrays = {}
    for name in ARRAY_FILES:
        with reading(folder / name, "rec preprocess"):
            arrays[name[:-4]] = snapshot.load_npy(name, mmap)
    with snapshot.open(SPLIT) as f:
        fingerprints = vocab_fingerprint, file_fingerprint(f)
    expected = {"users": len(vocab.user_ids), "movie_genres": len(vocab.movie_ids),
                "movie_titles": len(vocab.movie_ids)}
    n_ratings = len(arrays["rating_users"])
    expected.update((k, n_ratings) for k in ("rating_movies", "rating_values", "rating_times",
                                             "split"))
    for key, rows in expected.items():
        found = arrays[key].shape[0] if arrays[key].ndim else 0
        if found != rows:
            raise RecError(f"{folder / (key + '.npy')} does not fit the rest of "
                           f"{folder} ({found} rows, expected {rows}): run "
                           "`rec preprocess` again")
    return Dataset(vocab=vocab, **arrays, fingerprints=fingerprints)
