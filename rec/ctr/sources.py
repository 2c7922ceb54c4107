"""CTR data sources: where ctr-train's samples come from, as model inputs (numpy only).

Two sources give the same inputs (see rec/models/ctr.py): `MovieLensSource` (the whole
preprocessed dataset as arrays, on its saved split) and `CriteoSource` (a raw Criteo file,
streamed chunk by chunk each epoch; validation lines are held in memory, up to
MAX_VAL_ROWS).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from rec.ctr.fields import MovieLensFields
from rec.datasets import criteo
from rec.datasets.contract import RELEVANT, dataset_identity, dataset_paths, load_dataset
from rec.datasets.tuning import tuning_view
from rec.errors import UsageError
from rec.paths import CATEGORIES

MAX_VAL_ROWS = 2_000_000  # validation lines kept in memory (the rest are skipped)
PART_BATCHES = 16  # batches of MovieLens samples built at a time (MovieLensSource.train_parts)
DENSE_RATED_KEYS = 2 ** 26  # (user, movie) pairs up to which the rated ones are a table


@dataclass
class Arrays:
    """Model inputs (numpy) and labels for n samples; `rows` = line numbers (Criteo)."""

    inputs: dict
    labels: np.ndarray | None
    rows: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.inputs["ids"])

    def take(self, index) -> "Arrays":
        return Arrays({k: v[index] for k, v in self.inputs.items()},
                      None if self.labels is None else self.labels[index],
                      None if self.rows is None else self.rows[index])

    @staticmethod
    def concat(parts: list["Arrays"]) -> "Arrays":
        parts = [p for p in parts if len(p)] or parts[:1]
        keys = parts[0].inputs.keys()
        cat = lambda xs: None if xs[0] is None else np.concatenate(xs)  # noqa: E731
        return Arrays({k: np.concatenate([p.inputs[k] for p in parts]) for k in keys},
                      cat([p.labels for p in parts]), cat([p.rows for p in parts]))


# --- sources --------------------------------------------------------------------------------


def require_two_classes(labels: np.ndarray | None, where: str, positives: int = 0,
                        n: int = 0) -> None:
    """Refuse (exit 2) labels of one class only (`labels`, or `positives` of `n` counted
    already): AUC is undefined on them and the model would learn a constant. Raised before
    any model is saved."""
    if labels is not None:
        positives, n = int(np.count_nonzero(labels)), len(labels)
    if n and positives in (0, n):
        kind = "positive (1)" if positives else "negative (0)"
        raise UsageError(f"{where} holds only {kind} labels ({n:,} samples): a CTR model "
                         "needs both classes; nothing was saved or replaced")


class MovieLensSource:
    """(user, movie) pairs of `ds`: label 1 when the rating is 4 or more, 0 when it is lower
    and, with `negatives` K > 0, for K movies per training rating that the user did not
    rate (drawn uniformly from the catalogue, anew each epoch). With K = 0 the model learns
    "will like, given watched" (the course's CTR view of ratings); with K > 0 it learns
    "will watch and like", the rank stage of recall then rank. Validation gets K such
    negatives per validation rating too, drawn once from `seed`. `rec ctr-train` passes
    the tuning view (rec.datasets.tuning): its validation, which chooses the epochs and
    stops early, is the tuning slice, never the evaluation split; `evaluated` is the
    dataset itself, for the report after training (recall then rank)."""

    name = "movielens"

    def __init__(self, ds, crosses: bool, negatives: int = 0, seed: int = 0, evaluated=None):
        self.ds, self.evaluated = ds, evaluated if evaluated is not None else ds
        self.fields = MovieLensFields.from_dataset(ds, crosses)
        self.negatives = int(negatives)
        (tu, tm, tr), (vu, vm, vr) = ds.train_val()
        self.train_pairs = (tu, tm, (tr >= RELEVANT).astype(np.float32))
        self.train_rated = np.unique(tu.astype(np.int64) * ds.n_movies + tm)
        val_labels = (vr >= RELEVANT).astype(np.float32)
        require_two_classes(None, "the training part of output/dataset (less the tuning slice) "
                            f"(label: rating >= {RELEVANT})",
                            int(np.count_nonzero(self.train_pairs[2])),
                            len(tu) * (1 + self.negatives))
        if self.negatives:
            rated = np.unique(ds.rating_users.astype(np.int64) * ds.n_movies + ds.rating_movies)
            nu, nm = self._unrated(np.repeat(vu, self.negatives), rated,
                                   np.random.default_rng([seed, 1]))
            vu, vm = np.concatenate([vu, nu]), np.concatenate([vm, nm])
            val_labels = np.concatenate([val_labels, np.zeros(len(nu), np.float32)])
        self.val = Arrays(self.fields.inputs(vu, vm), val_labels)
        self.n_train = len(tu) * (1 + self.negatives)
        require_two_classes(self.val.labels, "the validation part (the tuning slice) of "
                            f"output/dataset (label: rating >= {RELEVANT})")

    def _unrated(self, users: np.ndarray, rated: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
        """One uniformly drawn movie per entry of `users` that the user has not rated (keys
        user * n_movies + movie in the sorted `rated`); a draw that hits a rated movie is
        redrawn up to 4 times, then dropped."""
        n_movies = self.ds.n_movies
        users = users.astype(np.int64)

        n_keys = (int(users.max()) + 1) * n_movies if len(users) else 0
        if n_keys <= DENSE_RATED_KEYS:  # a lookup table: ml-1m's 23 MB, 10x faster
            table = np.zeros(n_keys, bool)
            table[rated[rated < n_keys]] = True

            def is_rated(at: np.ndarray) -> np.ndarray:
                return table[users[at] * n_movies + movies[at]]
        else:
            def is_rated(at: np.ndarray) -> np.ndarray:
                keys = users[at] * n_movies + movies[at]
                return rated[np.minimum(np.searchsorted(rated, keys), len(rated) - 1)] == keys

        movies = rng.integers(0, n_movies, size=len(users))
        # only the redrawn entries are looked up again (each lookup of all 3.2 million of an
        # ml-1m epoch took 0.25 s, five of them an epoch); the same draws as looking up all
        hit = np.flatnonzero(is_rated(slice(None)))
        for _ in range(4):
            if not len(hit):
                break
            movies[hit] = rng.integers(0, n_movies, size=len(hit))
            hit = hit[is_rated(hit)]
        keep = np.ones(len(users), bool)
        keep[hit] = False
        return users[keep], movies[keep]

    def model_shape(self) -> dict:
        f = self.fields
        return {"n_ids": f.n_ids, "slot_fields": f.slot_fields, "n_dense": 0,
                "n_cross": f.n_cross}

    def train_parts(self, rng, batch_size: int = 4096) -> Iterator[Arrays]:
        """The epoch's training samples (with the epoch's negatives, drawn by `rng(1)`),
        shuffled by `rng()` (rec.engine.trainer.Epoch.rng), PART_BATCHES batches of
        `batch_size` a part: only the (user, movie, label) triples are held for the whole
        epoch, each part's model inputs are built when it comes (the same samples in the
        same order as building them all and shuffling the whole: on ml-1m with 4 negatives
        per rating the epoch's 4 million samples were 0.9 GB of inputs, twice over for the
        shuffled copy: a peak of 2.5 GB)."""
        users, movies, labels = self.train_pairs
        if self.negatives:
            nu, nm = self._unrated(np.repeat(users, self.negatives), self.train_rated, rng(1))
            users, movies = np.concatenate([users, nu]), np.concatenate([movies, nm])
            labels = np.concatenate([labels, np.zeros(len(nu), np.float32)])
        self.n_train = len(users)
        order = rng().permutation(len(users))
        step = max(1, batch_size) * PART_BATCHES

        def part(lo: int) -> Arrays:
            at = order[lo:lo + step]
            return Arrays(self.fields.inputs(users[at], movies[at]), labels[at])
        # the next part is built in a thread while Paddle trains on this one (its CPU
        # kernels keep to about one core; numpy's gathers release the GIL)
        with ThreadPoolExecutor(1) as builder:
            ahead = builder.submit(part, 0)
            for lo in range(0, len(order), step):
                current = ahead.result()
                if lo + step < len(order):
                    ahead = builder.submit(part, lo + step)
                yield current

    def validation(self) -> Arrays:
        return self.val

    def describe(self) -> dict:
        return self.fields.describe()

    def save_vocabulary(self, folder: Path) -> None:
        """Nothing: the fields' ids come from output/dataset."""


class CriteoSource:
    """A raw Criteo file, streamed: each epoch parses it chunk by chunk, shuffles each
    chunk's training lines with the epoch's generator for that chunk and trains on them.

    Validation: `--val-input FILE`, or the lines `criteo.validation_mask` picks (a seeded
    `val_ratio` of line numbers), collected during the first pass."""

    name = "criteo"

    def __init__(self, path: Path, transform: criteo.CriteoTransform, val_ratio: float,
                 seed: int, val_path: Path | None = None,
                 chunk_bytes: int = criteo.CHUNK_BYTES):
        self.path, self.val_path = Path(path), val_path
        self.transform, self.val_ratio, self.seed = transform, val_ratio, seed
        self.chunk_bytes = chunk_bytes
        self._val: list[Arrays] | None = None
        self._val_rows = 0
        self.n_train = None  # known after a first pass
        if not self.path.is_file():
            raise UsageError(f"no such file: {self.path}")
        if val_path is not None and not Path(val_path).is_file():
            raise UsageError(f"no such file: {val_path}")

    def arrays(self, chunk: criteo.Chunk) -> Arrays:
        t = self.transform
        return Arrays({"ids": t.ids(chunk), "dense": t.dense(chunk)}, chunk.labels,
                      chunk.line_numbers)

    def _split(self, chunk: criteo.Chunk) -> tuple[criteo.Chunk, criteo.Chunk | None]:
        if self.val_path is not None:
            return chunk, None
        is_val = criteo.validation_mask(chunk.line_numbers, self.val_ratio, self.seed)
        return chunk.take(~is_val), chunk.take(is_val)

    def count_vocabulary(self) -> None:
        """The vocab transform's pass: count categories over the training lines."""
        counter = criteo.VocabCounter()
        for chunk in criteo.read_chunks(self.path, self.chunk_bytes):
            train, _ = self._split(chunk)
            counter.add(train.cats, train.cat_missing)
        self.transform.vocab = counter.vocabulary(self.transform.min_count)

    def model_shape(self) -> dict:
        return {"n_ids": self.transform.n_ids, "slot_fields": list(range(criteo.N_CAT)),
                "n_dense": criteo.N_DENSE, "n_cross": 0}

    def train_parts(self, rng, batch_size: int = 4096) -> Iterator[Arrays]:
        """The epoch's training lines, chunk i shuffled by `rng(i)` (rec.engine.trainer.Epoch.rng);
        its parts are the file's chunks, whatever the batch size."""
        collect = self._val is None and self.val_path is None
        if collect:
            val_parts = []
        n = positives = 0
        for i, chunk in enumerate(criteo.read_chunks(self.path, self.chunk_bytes)):
            train, val = self._split(chunk)
            if collect and val is not None and len(val) and self._val_rows < MAX_VAL_ROWS:
                val = val.take(np.arange(min(len(val), MAX_VAL_ROWS - self._val_rows)))
                val_parts.append(self.arrays(val))
                self._val_rows += len(val)
            if not len(train):
                continue
            n += len(train)
            positives += int(np.count_nonzero(train.labels))
            order = rng(i).permutation(len(train))
            yield self.arrays(train.take(order))
        if collect:
            self._val = val_parts
        self.n_train = n
        require_two_classes(None, f"the training lines of {self.path}", positives, n)

    def validation(self) -> Arrays:
        if self._val is None and self.val_path is not None:
            parts, rows = [], 0
            for chunk in criteo.read_chunks(self.val_path, self.chunk_bytes):
                if rows >= MAX_VAL_ROWS:
                    break
                chunk = chunk.take(np.arange(min(len(chunk), MAX_VAL_ROWS - rows)))
                parts.append(self.arrays(chunk))
                rows += len(chunk)
            self._val = parts
        if not self._val:
            where = self.val_path or f"{self.path} (--val-ratio {self.val_ratio})"
            raise UsageError(f"no validation lines in {where}: use a larger file, a larger "
                             "--val-ratio or --val-input")
        val = Arrays.concat(self._val)
        require_two_classes(val.labels, f"the validation lines of {self.val_path or self.path}")
        return val

    def save_vocabulary(self, folder: Path) -> None:
        """The category vocabulary of the vocab transform (CATEGORIES), which travels with
        the best model and the checkpoint; nothing for the hash transform."""
        if self.transform.mode == "vocab":
            self.transform.vocab.save(folder / CATEGORIES)

    def describe(self) -> dict:
        return {"kind": "criteo", "transform": self.transform.to_json(),
                "val_ratio": None if self.val_path else self.val_ratio,
                "input": str(self.path), "val_input": str(self.val_path) if self.val_path else None}


def make_source(paths, p, vocab_path: Path | None):
    """`rec ctr-train`'s data source (p: its CtrParams), the fingerprint of its input, the
    input files and each one's fingerprint as read (for the manifest)."""
    from rec.storage import manifest
    from rec.console import log

    if p.data == "movielens":
        ds = load_dataset(paths)
        source = MovieLensSource(tuning_view(ds), p.crosses, p.negatives, p.seed, evaluated=ds)
        files = dataset_paths(paths)
        return source, dataset_identity(paths), files, manifest.fingerprints(files)
    files = [Path(p.input)] + ([Path(p.val_input)] if p.val_input else [])
    for f in files:
        if not f.is_file():  # a pipe or <(...) exists but cannot be read again each epoch
            raise UsageError(f"{f} is not a file: ctr-train reads its Criteo lines again "
                             "every epoch (save them to a file first)" if f.exists()
                             else f"no such file: {f}")
    transform = criteo.CriteoTransform(p.categorical, p.hash_size, p.min_count)
    source = CriteoSource(Path(p.input), transform, p.val_ratio, p.seed,
                          Path(p.val_input) if p.val_input else None)
    if p.categorical == "vocab":
        if vocab_path is not None:
            transform.vocab = criteo.CategoryVocab.load(vocab_path)
        else:
            log(f"counting categories in {p.input} (--min-count {p.min_count})")
            source.count_vocabulary()
            log(f"vocabulary: {transform.vocab.size:,} ids")
    read_as = manifest.fingerprints(files)  # each hashed once (a Criteo day: ~90 s)
    fp = "+".join(read_as[f] or "" for f in files)
    return source, fp, files, read_as
