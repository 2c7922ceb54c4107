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
        return self.data_dir / ".downloads"

    # output ---------------------------------------------------------------
    @property
    def manifest(self) -> Path:
        return self.output_dir / "manifest.json"

    @property
    def dataset_dir(self) -> Path:
        return self.output_dir / "dataset"

    def dataset_file(self, name: str) -> Path:
        return self.dataset_dir / name

    @property
    def vocab(self) -> Path:
        return self.dataset_dir / "vocab.json"

    @property
    def model_dir(self) -> Path:
        return self.output_dir / "model"

    @property
    def features_dir(self) -> Path:
        return self.output_dir / "features"

    @property
    def ctr_dir(self) -> Path:
        return self.output_dir / "ctr"


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


def read_json(path: Path, run: str, keys: tuple[str, ...] = ()) -> Any:
    """A JSON object written by stage `run`, with at least `keys`; missing: exit 2, damaged:
    exit 1, both naming `run`."""
    require([path], run)
    with reading(path, run):
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(obj, dict):
            raise ValueError(f"expected a JSON object, found {type(obj).__name__}")
        missing = [k for k in keys if k not in obj]
        if missing:
            raise ValueError(f"no {', '.join(missing)}")
    return obj
