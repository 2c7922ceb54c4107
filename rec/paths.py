"""Every file under data/ and output/, named once.

Stages never build paths by hand: they ask a `Paths` object, so moving the folders
(`--data-dir`, `--output-dir`, `REC_DATA_DIR`, `REC_OUTPUT_DIR`) moves everything.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from rec.errors import RecError, UsageError


# File names, each spelled here only. A training stage's folder (see `TrainingFolder`):
PARAMS = "model.pdparams"  # the best network's weights (paddle.save)
CONFIG = "config.json"  # everything that rebuilds that network
METRICS = "metrics.json"  # in the best model's folder: the run's result (its stdout object)
HISTORY = "history.json"  # one row per epoch
BEST = "best"  # output/model/: folder, the published model (rec.storage.unit: one sealed unit)
STAGED = "best-of-run"  # folder: the running training's best model, published at its end
CHECKPOINT = "checkpoint"  # folder: weights, optimizer state and STATE of the last epoch
STATE = "state.json"  # in CHECKPOINT: epoch, history, best so far, the run's parameters
RUN = "run.json"  # beside a saved model (staged and published): the run id of the run that saved it
OPTIMIZER = "optimizer.pdopt"  # in rec train's CHECKPOINT: the optimizer's state
LAUNCH_LOGS = "launch-logs"  # folder: the workers' logs of a --nproc run
EASE = "ease.npz"  # output/features/: the EASE recall channel (rec.rank.channels)
EVAL = "eval.json"  # output/model/: rec evaluate's report
WEIGHTS, CATEGORIES = "weights.npz", "vocab.npz"  # output/ctr/model/: numpy weights, Criteo vocab
# output/features/: the saved vectors and how to score them
USER_VECTORS, MOVIE_VECTORS, SCORING = "usr_feat.pkl", "mov_feat.pkl", "scoring.json"
# ... and the same vectors as float32 matrices, rows in VECTOR_IDS' order (what rec reads)
USER_MATRIX, MOVIE_MATRIX, VECTOR_IDS = "usr_feat.npy", "mov_feat.npy", "feat_ids.json"
# output/dataset/ (the dataset contract, rec/datasets/contract.py, names the other arrays)
VOCAB, SPLIT = "vocab.json", "split.npy"

# The folders under output/ that stages own, each with the stage that writes it (train and
# ctr-train swap the folders of their models and checkpoints in whole, the others theirs).
OUTPUT_ARTIFACTS = {"dataset": "preprocess", "model": "train", "features": "save-features",
                    "ctr": "ctr-train", "export": "export"}
DOWNLOADS = ".downloads"  # data/: partial archives (Paths.download_cache)


def params_file(name: str) -> str:
    """A checkpoint's weights file of the network called `name` (model.pdparams)."""
    return f"{name}.pdparams"


def optimizer_file(name: str) -> str:
    """A checkpoint's optimizer-state file of the network called `name` (model.pdopt)."""
    return f"{name}.pdopt"


@dataclass(frozen=True)
class TrainingFolder:
    """The files of one training stage: the run's files in `root`, the best model in `best`
    (a folder of its own: the weights, config.json, the run's metrics.json and what else the
    model needs, one unit swapped in whole by rec.engine.trainer.publish)."""

    root: Path
    best: Path

    params = property(lambda self: self.best / PARAMS)
    config = property(lambda self: self.best / CONFIG)
    metrics = property(lambda self: self.best / METRICS)
    history = property(lambda self: self.root / HISTORY)
    checkpoint = property(lambda self: self.root / CHECKPOINT)
    launch_logs = property(lambda self: self.root / LAUNCH_LOGS)
    weights = property(lambda self: self.best / WEIGHTS)
    categories = property(lambda self: self.best / CATEGORIES)

    @property
    def staging(self) -> "TrainingFolder":
        """Where a run keeps its best model until it ends (rec.engine.trainer.publish): an
        interrupted run never replaces the previous model, and --resume finds its own."""
        return TrainingFolder(self.root, self.root / STAGED)


@dataclass(frozen=True)
class Paths:
    data_dir: Path
    output_dir: Path

    @classmethod
    def from_env(cls, data_dir: str | None = None, output_dir: str | None = None) -> "Paths":
        data = data_dir or os.environ.get("REC_DATA_DIR") or "data"
        out = output_dir or os.environ.get("REC_OUTPUT_DIR") or "output"
        return cls(Path(data), Path(out))

    # raw data -------------------------------------------------------------
    def raw(self, dataset: str) -> Path:
        """Folder holding one extracted dataset, e.g. data/ml-1m."""
        return self.data_dir / dataset

    def download_cache(self) -> Path:
        """Where archives are downloaded (partial files live here until verified)."""
        return self.data_dir / DOWNLOADS

    # output ---------------------------------------------------------------
    manifest = property(lambda self: self.output_dir / "manifest.json")
    dataset_dir = property(lambda self: self.output_dir / "dataset")
    vocab = property(lambda self: self.dataset_dir / VOCAB)
    split = property(lambda self: self.dataset_dir / SPLIT)
    model_dir = property(lambda self: self.output_dir / "model")
    features_dir = property(lambda self: self.output_dir / "features")
    ctr_dir = property(lambda self: self.output_dir / "ctr")
    export_dir = property(lambda self: self.output_dir / "export")

    def dataset_file(self, name: str) -> Path:
        return self.dataset_dir / name

    @property
    def model(self) -> TrainingFolder:
        """rec train: output/model/ holds the run, output/model/best/ its best model."""
        return TrainingFolder(self.model_dir, self.model_dir / BEST)

    @property
    def ctr(self) -> TrainingFolder:
        """rec ctr-train: output/ctr/ holds the run, output/ctr/model/ its best model
        (PARAMS, CONFIG, METRICS, a copy of HISTORY, WEIGHTS and, for the Criteo vocab
        transform, CATEGORIES)."""
        return TrainingFolder(self.ctr_dir, self.ctr_dir / "model")

    @property
    def eval_report(self) -> Path:
        return self.model_dir / EVAL


def _inside(inner: str, outer: str) -> bool:
    return inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep)


def overlap(paths: Paths, datasets: list[str]) -> str | None:
    """Why the data folder and the output folder cannot be used together, or None.

    Each folder holds artifacts that one stage owns and replaces whole: data/<dataset> (and
    data/.downloads) `rec download`'s, output/dataset, model, features, ctr and export their
    stages'. A layout in which one of them would hold (or be) the other folder or one of its
    artifacts lets a stage delete what another owns (preprocess swapping output/dataset would
    take the raw data inside it along): refused. Symbolic links are followed. The same folder
    for both, or one folder inside the other beside those artifacts, is fine."""
    real = lambda p: os.path.realpath(p)  # noqa: E731
    data, out = real(paths.data_dir), real(paths.output_dir)
    owned_out = {real(paths.output_dir / name): stage for name, stage in OUTPUT_ARTIFACTS.items()}
    owned_data = [real(paths.raw(name)) for name in [*datasets, DOWNLOADS]]
    for folder, stage in owned_out.items():
        if _inside(data, folder):
            return (f"the data folder {paths.data_dir} is inside {folder}, which `rec {stage}` "
                    "owns and replaces: put the data folder elsewhere (the output folder "
                    "itself will do)")
    for folder in owned_data:
        if _inside(out, folder):
            return (f"the output folder {paths.output_dir} is inside {folder}, which `rec "
                    "download` owns and replaces: put the output folder elsewhere (the data "
                    "folder itself will do)")
    for mine, stage in owned_out.items():
        for theirs in owned_data:
            if _inside(mine, theirs) or _inside(theirs, mine):
                return (f"{mine} (owned by `rec {stage}`) and {theirs} (owned by `rec "
                        "download`) overlap, through a symbolic link: the one would replace "
                        "the other; point them at separate folders")
    return None


def require(paths: list[Path], run_first: str) -> None:
    """Stop with exit 2 and one line naming the stage to run when an input is missing."""
    for path in paths:
        if not path.exists():
            raise UsageError(f"missing {path}: run `{run_first}` first")


@contextlib.contextmanager
def reading(path: Path, run: str) -> Iterator[None]:
    """Inside, a file that cannot be read or makes no sense (truncated, garbage, the wrong
    shape of JSON) stops with one line naming it and the stage to rerun, not a traceback."""
    try:
        yield
    except RecError:
        raise
    except Exception as e:  # json, numpy, zipfile and paddle raise many kinds
        raise RecError(f"{path} is damaged ({type(e).__name__}: {e}): run `{run}` again")


def read_json(path: Path, run: str, keys: tuple[str, ...] = (), snapshot=None) -> Any:
    """A JSON object written by stage `run`, with at least `keys`; missing: exit 2, damaged:
    exit 1, both naming `run`. Read through `snapshot` (rec.storage.snapshot.Snapshot of the
    folder of `path`) when given."""
    path = Path(path)
    if snapshot is None:
        require([path], run)
    elif not snapshot.is_file(path.name):
        raise UsageError(f"missing {path}: run `{run}` first")
    with reading(path, run):
        data = path.read_bytes() if snapshot is None else snapshot.read_bytes(path.name)
        obj = json.loads(data.decode("utf-8"))
        if not isinstance(obj, dict):
            raise ValueError(f"expected a JSON object, found {type(obj).__name__}")
        missing = [k for k in keys if k not in obj]
        if missing:
            raise ValueError(f"no {', '.join(missing)}")
    return obj


def downloaded(output_dir: Path) -> bool:
    """Whether output_dir's manifest records a download (else an error that names the
    stages to run starts with `rec download`): unreadable counts as recorded (no claim)."""
    try:
        stages = json.loads((output_dir / "manifest.json").read_text("utf-8"))["stages"]
        return "download" in stages
    except FileNotFoundError:
        return False
    except (OSError, ValueError, KeyError, TypeError):
        return True
