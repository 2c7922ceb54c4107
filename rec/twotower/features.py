"""The saved user and movie vectors (output/features/): writing and safely reading them.

`rec save-features` writes, `rec recommend` / `rec similar` read (numpy only, no paddle):

    usr_feat.pkl   {str(raw user id): float32 vector (D,)}   the course's shape
    mov_feat.pkl   {str(raw movie id): float32 vector (D,)}
    usr_feat.npy   the same vectors as float32 matrices (U, D) and (M, D), rows in the
    mov_feat.npy   order of feat_ids.json's "users" and "movies": what rec reads, in a
    feat_ids.json  tenth of the time the pickles take (their arrays are rebuilt one by one)
    fold_in.npz    the user tower in pieces, for new users (rec.twotower.foldin)
    ease.npz       the EASE recall channel, its λ and PureSVD (rec.rank.channels; the
                   file's layout and its checks: rec.rank.easefile)
    scoring.json   how the model turns two vectors into a predicted rating (rec.scoring);
                   the first `taste_dims` components are the taste space used for
                   movie-to-movie similarity (bias components ride along after them);
                   "run_id": the save-features run that wrote the folder.
    unit.json      that run id and the other files' sha256 (rec.storage.unit): the folder is written
                   as one unit, and a reader refuses files of different runs.

A folder written before the matrices existed is read from its pickles.

Pickles are read back with a restricted unpickler that only rebuilds plain containers and
numpy arrays, so a pickle from elsewhere cannot run code.
"""

from __future__ import annotations

import io
import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rec.storage import unit
from rec.storage.atomic import save_npy, write_bytes, write_json
from rec.errors import RecError, UsageError
from rec.paths import EASE as EASE_FILE
from rec.paths import (MOVIE_MATRIX, MOVIE_VECTORS, SCORING, USER_MATRIX, USER_VECTORS,
                       VECTOR_IDS)
from rec.storage.snapshot import npy_bytes
from rec.storage.snapshot import read as read_snapshot
from rec.twotower.foldin import FOLD_IN
from rec.twotower.kinds import KINDS

_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"), ("numpy.core.numeric", "_frombuffer"),
    ("builtins", "dict"), ("builtins", "list"), ("builtins", "tuple"),
    ("collections", "OrderedDict"),
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global except numpy array plumbing and plain containers."""

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: only plain containers "
                                     "and numpy arrays are allowed")


def safe_load_pickle(path: Path, data: bytes | None = None):
    """The pickle at `path` (or its bytes `data`, already read), restricted as above."""
    try:
        if data is not None:
            return RestrictedUnpickler(io.BytesIO(data)).load()
        with open(path, "rb") as f:
            return RestrictedUnpickler(io.BufferedReader(f)).load()
    except pickle.UnpicklingError as e:
        raise RecError(f"{path}: {e}")
    except (EOFError, ValueError, TypeError, AttributeError) as e:
        raise RecError(f"{path}: not a valid feature pickle ({e})")


@dataclass
class Features:
    user_ids: list[str]
    users: np.ndarray  # float32 (U, D), row i is user_ids[i]
    movie_ids: list[str]
    movies: np.ndarray  # float32 (M, D)
    scoring: dict
    # the unit's other files as read with the vectors ({name: bytes}: FOLD_IN; EASE's
    # mapped, rec.storage.snapshot.Snapshot.map), so that a later use reads the same
    # run's, not the folder a save-features put there since
    extra: dict = field(default_factory=dict)

    def user_row(self) -> dict[str, int]:
        return {u: i for i, u in enumerate(self.user_ids)}

    def movie_row(self) -> dict[str, int]:
        return {m: i for i, m in enumerate(self.movie_ids)}

    def of_vocab(self, vocab) -> bool:
        """Whether these vectors are of exactly the users and movies of `vocab` (a
        dataset's), row for row."""
        return self.user_ids == [str(u) for u in vocab.user_ids] and \
            self.movie_ids == [str(m) for m in vocab.movie_ids]

    def taste(self) -> np.ndarray:
        """Movie vectors in the taste space (bias components dropped), for similarity."""
        return self.movies[:, : int(self.scoring.get("taste_dims", self.movies.shape[1]))]


def save_features(folder: Path, user_ids, user_vecs: np.ndarray, movie_ids, movie_vecs: np.ndarray,
                  scoring: dict, extra: dict[str, bytes] | None = None,
                  run_id: str | None = None, tagged: tuple[str, ...] = ()) -> list[Path]:
    """Write both pickles, the same vectors as matrices with their ids, scoring.json, the
    `extra` files ({name: bytes}, e.g. the fold-in pieces) and the unit's manifest as one
    unit: built in a folder beside `folder`, flushed, then swapped in whole (a failure
    midway leaves the old features untouched). The files share a run id. Return the paths
    written."""
    extra = extra or {}
    if scoring.get("match") not in KINDS:
        raise ValueError(f"unknown match {scoring.get('match')!r}")
    folder = Path(folder)
    users = {str(u): np.asarray(v, dtype=np.float32) for u, v in zip(user_ids, user_vecs)}
    movies = {str(m): np.asarray(v, dtype=np.float32) for m, v in zip(movie_ids, movie_vecs)}
    run_id = run_id or unit.new_run_id()
    matrices = {USER_MATRIX: np.stack(list(users.values())),
                MOVIE_MATRIX: np.stack(list(movies.values()))}
    # scoring.json is hashed with the rest (a hand edit changes what serving does); it
    # still carries the run id, as it did when it was the unit's tagged file
    with unit.sealed_dir(folder, run_id, tagged=tuple(tagged)) as tmp:
        write_bytes(tmp / USER_VECTORS, pickle.dumps(users, protocol=4))
        write_bytes(tmp / MOVIE_VECTORS, pickle.dumps(movies, protocol=4))
        for name, matrix in matrices.items():
            save_npy(tmp / name, matrix)
        write_json(tmp / VECTOR_IDS, {"users": list(users), "movies": list(movies)})
        write_json(tmp / SCORING, {**scoring, "dim": int(np.asarray(user_vecs).shape[1]),
                                   "run_id": run_id})
        for name, data in extra.items():
            write_bytes(tmp / name, data)
    return features_files(folder, extra)


def features_files(folder: Path, extra) -> list[Path]:
    """The files save_features writes into `folder` with the `extra` files (their names)."""
    return [Path(folder) / name for name in [*HASHED, SCORING, *extra, unit.UNIT]]


HASHED = [USER_VECTORS, MOVIE_VECTORS, USER_MATRIX, MOVIE_MATRIX, VECTOR_IDS]  # in unit.json


def _as_matrix(path: Path, table) -> tuple[list[str], np.ndarray]:
    if not isinstance(table, dict) or not table:
        raise RecError(f"{path}: expected a non-empty {{id: vector}} dict")
    ids = list(table)
    try:
        matrix = np.stack([np.asarray(table[i], dtype=np.float32) for i in ids])
    except ValueError as e:
        raise RecError(f"{path}: vectors differ in shape ({e})")
    if matrix.ndim != 2:
        raise RecError(f"{path}: expected one vector per id")
    return [str(i) for i in ids], matrix


def _load_matrices(snapshot, loaded: dict[str, bytes]):
    """(user ids, user matrix, movie ids, movie matrix) from the .npy matrices and their ids,
    each file's bytes kept in `loaded` (for the unit's check); a damaged file is a RecError
    naming it."""
    folder = snapshot.path
    try:
        loaded[VECTOR_IDS] = snapshot.read_bytes(VECTOR_IDS)
        ids = json.loads(loaded[VECTOR_IDS].decode("utf-8"))
        user_ids, movie_ids = [str(i) for i in ids["users"]], [str(i) for i in ids["movies"]]
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, TypeError):
        raise RecError(f"{folder / VECTOR_IDS}: not a valid list of ids")
    found = [user_ids, None, movie_ids, None]
    for at, name, n in ((1, USER_MATRIX, len(user_ids)), (3, MOVIE_MATRIX, len(movie_ids))):
        loaded[name] = snapshot.read_bytes(name)  # vanished mid-swap: rec.storage.snapshot retries
        try:
            matrix = npy_bytes(loaded[name])
        except (OSError, ValueError) as e:
            raise RecError(f"{folder / name}: not a valid matrix ({e})")
        if matrix.ndim != 2 or len(matrix) != n or not n or matrix.dtype != np.float32:
            raise RecError(f"{folder / name}: expected {n} float32 vectors, one per id in "
                           f"{VECTOR_IDS}")
        found[at] = matrix
    return tuple(found)


def saved_from(paths, ds, config: dict) -> Features | None:
    """output/features when save-features wrote them from exactly this trained model
    (config: rec.twotower.kinds' trained_config or load_trained's) and this dataset: its
    vectors are then what the model computes (save-features checked them against it), so
    evaluate can rank by them without paddle. None when they are missing, stale or older."""
    from rec.datasets.contract import is_dataset

    try:
        features = load_features(paths.features_dir)
    except UsageError:
        return None
    sc = features.scoring
    if config.get("model_run") is None or sc.get("model_run") != config["model_run"] or \
            not is_dataset(sc.get("dataset_fingerprint"), paths, ds) or \
            not features.of_vocab(ds.vocab):
        return None
    return features


def earlier_model(paths, scoring: dict | None = None) -> str | None:
    """Why output/features (its scoring.json, `scoring`: read here when None) is not the
    model in output/model's (`rec train` ran since save-features: their run ids differ), in
    one line; None when they match, or when either does not say (a model or features from an
    older rec) or either is missing or damaged (their readers say so)."""
    try:
        if scoring is None:
            scoring = json.loads((paths.features_dir / SCORING).read_text())
        # the model's run id alone (rec.twotower.kinds.model_run's), not the whole unit
        # checked: a warning is not worth hashing the weights on every recommend
        run = unit.run_of(paths.model.best)
        saved = scoring.get("model_run")
    except (OSError, ValueError, AttributeError):
        return None
    if run is None or saved is None or run == saved:
        return None
    return ("output/features was saved from another `rec train` run than output/model's "
            "(trained again since?): run `rec save-features`, then `rec ctr-train`")


def features_rerun(paths, dataset) -> str:
    """What to run when output/features was saved from another output/dataset: save-features
    again, or first `rec train` when output/model is of another dataset too (save-features
    refuses that one: the advice led to a second error)."""
    from rec.datasets.contract import is_dataset

    try:
        config = json.loads(paths.model.config.read_text())
        trained_on = (config.get("dataset") or {}).get("fingerprint")
    except (OSError, ValueError, AttributeError):  # missing or damaged: save-features says
        trained_on = None
    if trained_on is None or is_dataset(trained_on, paths, dataset):
        return "run `rec save-features` again"
    return "run `rec train`, then `rec save-features`"


def load_features(folder: Path, item_models: bool = True) -> Features:
    """The vectors of `folder`, every file from the same save-features run: read through
    one directory descriptor, checked against the unit as read, and read again whole when a
    save-features swapped the folder meanwhile (rec.storage.snapshot). With
    item_models=False EASE's file (the rank stage's channels: 55 MB on ml-1m, a sixth of
    `rec recommend 42 --recall-only`'s time to read and check) is left unread, and `extra`
    has no entry for it: for a caller that does not rank."""
    try:
        return read_snapshot(folder, lambda snapshot: _load_features(snapshot, item_models))
    except RecError as e:  # a damaged file: every message names the stage that rewrites it
        if "`rec " in str(e):
            raise
        raise RecError(f"{e}: run `rec save-features` again", e.exit_code) from None


def stages_to_run(output_dir: Path) -> str:
    """"`rec save-features`", or the stages before it too where their outputs are missing
    as well (an empty output folder: download, preprocess, train, save-features), so that
    the first command named is the one to run first."""
    from rec.paths import BEST, VOCAB, downloaded

    needed = []
    if not (output_dir / "dataset" / VOCAB).is_file():
        needed += [*(["`rec download`"] if not downloaded(output_dir) else []),
                   "`rec preprocess`"]
    if not (output_dir / "model" / BEST).is_dir():
        needed.append("`rec train`")
    needed.append("`rec save-features`")
    return ", ".join(needed[:-1]) + " and " + needed[-1] if len(needed) > 1 else needed[0]


def npz_run_id(data, path: Path) -> str:
    """The run id an .npz of a unit carries (its "run_id" member), read alone (`data`: its
    bytes or its mapping, rec.storage.snapshot.Snapshot.map)."""
    import zipfile

    from rec.rank.easefile import as_file

    try:
        with zipfile.ZipFile(as_file(data)) as z:
            return str(np.load(io.BytesIO(z.read("run_id.npy")), allow_pickle=False))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise RecError(f"{path} is damaged ({e}): run `rec save-features` again")


def _load_features(snapshot, item_models: bool = True) -> Features:
    folder = snapshot.path
    if not folder.is_dir():  # the whole folder: say so, not the first file looked for
        raise UsageError(f"missing {folder} (the saved vectors): run "
                         f"{stages_to_run(folder.parent)} first")
    for name in (USER_VECTORS, MOVIE_VECTORS, SCORING):
        if not snapshot.is_file(name):
            raise UsageError(f"missing {folder / name}: run {stages_to_run(folder.parent)} first")
    loaded: dict[str, bytes] = {}
    listed = unit.listed(snapshot)
    # the matrices when the unit vouches for them; else (written before them, or by hand)
    # the pickles
    if {USER_MATRIX, MOVIE_MATRIX, VECTOR_IDS} <= listed:
        user_ids, users, movie_ids, movies = _load_matrices(snapshot, loaded)
    else:
        tables = []
        for name in (USER_VECTORS, MOVIE_VECTORS):
            loaded[name] = snapshot.read_bytes(name)
            tables.append(_as_matrix(folder / name, safe_load_pickle(folder / name,
                                                                     loaded[name])))
        (user_ids, users), (movie_ids, movies) = tables
    scoring_bytes = snapshot.read_bytes(SCORING)
    try:
        scoring = json.loads(scoring_bytes)
        KINDS[scoring["match"]].check_scoring(scoring, users.shape[1])
    except (ValueError, KeyError, AssertionError, TypeError):
        raise RecError(f"{folder / SCORING}: not a valid scoring description")
    tagged = {}
    if SCORING in listed:  # hashed with the rest, as read
        loaded[SCORING] = scoring_bytes
    else:  # an older unit: scoring.json was its tagged file, checked by its run id
        tagged[SCORING] = scoring.get("run_id")
    # EASE's file mapped, not read (its B is 55 MB on ml-1m; a user's scores read a few
    # of its rows: rec.rank.easefile)
    extra = {name: snapshot.map(name) if name == EASE_FILE else snapshot.read_bytes(name)
             for name in ((FOLD_IN, EASE_FILE) if item_models else (FOLD_IN,))
             if snapshot.is_file(name)}
    if EASE_FILE in extra and EASE_FILE not in listed:
        # the channel file carries its run id (EASE's matrix is the largest file: no sha256
        # on every read; the zip's CRC-32 checks its bytes when it is loaded)
        tagged[EASE_FILE] = npz_run_id(extra[EASE_FILE], folder / EASE_FILE)
    unit.check(snapshot, "rec save-features", tagged,
               {**loaded, **{k: v for k, v in extra.items() if k not in tagged}})
    if users.shape[1] != movies.shape[1]:
        raise RecError(f"{folder}: user vectors have {users.shape[1]} components, "
                       f"movie vectors {movies.shape[1]}")
    return Features(user_ids, users, movie_ids, movies, scoring, extra)
