"""output/manifest.json: what each stage ran with, what it read and what it wrote.

Fingerprints let `rec status` say a stage is stale: its inputs changed since it ran.
Each file's size and mtime are recorded beside its fingerprint ("stats"): `rec status`
hashes only a file whose size or mtime changed since (as make and git do), so it reads
none of the dataset's or the models' megabytes on every run.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from rec import __version__
from rec.atomic import write_json
from rec.errors import UsageError
from rec.paths import Paths

# The stages in pipeline order, with what each one needs before it can run.
STAGES = ["download", "preprocess", "train", "evaluate", "save-features", "ctr-train"]
UPSTREAM = {
    "preprocess": "download",
    "train": "preprocess",
    "evaluate": "train",
    "save-features": "train",
    "ctr-train": "preprocess",
}


def fingerprint(path: Path) -> str | None:
    """Content hash of a file; for a folder, a hash over its files' names, sizes and mtimes."""
    path = Path(path)
    if not path.exists():
        return None
    h = hashlib.blake2b(digest_size=12)
    if path.is_file():
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
    for child in sorted(p for p in path.rglob("*") if p.is_file()):
        st = child.stat()
        h.update(f"{child.relative_to(path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def file_stat(path: Path) -> list[int] | None:
    """[size, mtime_ns] of a file; None for a folder (its fingerprint is stats already) or a
    missing path."""
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns] if Path(path).is_file() else None


def load(paths: Paths) -> dict:
    """The manifest; a missing or damaged one reads as empty (its stages show 'not run'),
    and a stage's entry that is not an object is left out."""
    try:
        obj = json.loads(paths.manifest.read_text())
    except (FileNotFoundError, ValueError):  # JSONDecodeError and UnicodeDecodeError
        obj = None
    stages = obj.get("stages") if isinstance(obj, dict) else None
    if not isinstance(stages, dict):
        return {"stages": {}}
    obj["stages"] = {k: v for k, v in stages.items() if isinstance(v, dict)}
    return obj


def record(paths: Paths, stage: str, params: dict[str, Any], inputs: list[Path],
           outputs: list[Path]) -> None:
    """Record a finished stage (atomically rewriting the manifest)."""
    manifest = load(paths)
    order = max((e.get("order") for e in manifest["stages"].values()
                 if isinstance(e.get("order"), int)), default=0) + 1
    # stat before hashing: a file changed while it is hashed has another mtime next time
    stats = {str(Path(p).resolve()): file_stat(p) for p in [*inputs, *outputs]}
    manifest.setdefault("stages", {})[stage] = {
        "command": " ".join(["rec"] + sys.argv[1:]),
        "params": params,
        "version": __version__,
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "inputs": {str(Path(p).resolve()): fingerprint(p) for p in inputs},
        "outputs": {str(Path(p).resolve()): fingerprint(p) for p in outputs},
        "stats": {p: st for p, st in stats.items() if st is not None},
        "order": order,  # which of two stages ran last (`time` has whole seconds only)
    }
    write_json(paths.manifest, manifest)


def stage_state(entry: dict | None, hashed: dict | None = None) -> str:
    """'not run', 'fresh', 'stale' (inputs changed) or 'modified' (its outputs changed).
    A file whose size and mtime are the recorded ones is not read; `hashed` (path ->
    fingerprint) keeps the files hashed for one stage for the next."""
    if entry is None:
        return "not run"
    hashed = {} if hashed is None else hashed
    stats = entry.get("stats") if isinstance(entry.get("stats"), dict) else {}

    def unchanged(p: str, fp) -> bool:
        if stats.get(p) is not None and stats[p] == file_stat(Path(p)):
            return True
        if p not in hashed:
            hashed[p] = fingerprint(Path(p))
        return hashed[p] == fp

    inputs, outputs = entry.get("inputs"), entry.get("outputs")
    for p, fp in (inputs if isinstance(inputs, dict) else {}).items():
        if not unchanged(p, fp):
            return "stale"
    for p, fp in (outputs if isinstance(outputs, dict) else {}).items():
        if not unchanged(p, fp):
            return "modified"
    return "fresh"


# --- which dataset: the one downloaded last, into the data folder in use --------------------


def last_download(paths: Paths) -> tuple[str, Path] | None:
    """(dataset, folder) of the last `rec download` recorded in this output folder."""
    entry = load(paths)["stages"].get("download") or {}
    params, outputs = entry.get("params"), entry.get("outputs")
    dataset = params.get("dataset") if isinstance(params, dict) else None
    if not isinstance(dataset, str) or not isinstance(outputs, dict) or len(outputs) != 1:
        return None
    return dataset, Path(next(iter(outputs)))


def _same(a: Path, b: Path) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def default_dataset(paths: Paths, marker: str = ".rec-verified.json") -> str | None:
    """The dataset `rec preprocess` reads without --dataset: the one downloaded last into
    the data folder in use (the manifest says which, else the newest verified folder there),
    else None. When the last download went to another data folder and this one holds none,
    stop and say which --data-dir to pass."""
    last = last_download(paths)
    if last and _same(last[1].parent, paths.data_dir):
        return last[0]
    present = sorted((p for p in Path(paths.data_dir).glob(f"*/{marker}") if p.is_file()),
                     key=lambda p: p.stat().st_mtime_ns)
    if present:
        return present[-1].parent.name
    if last:
        raise UsageError(f"no dataset in {paths.data_dir}: the last download, {last[0]}, went to "
                         f"{last[1]}: pass `--data-dir {last[1].parent}` (before the command), "
                         f"or --dataset NAME")
    return None


def mismatches(paths: Paths, stages: dict[str, dict]) -> dict[str, str]:
    """Stages built from another dataset than the one downloaded last (stage -> why), and a
    last download outside the data folder in use ("data" -> why)."""
    found = {}
    last = last_download(paths)
    if last is None:
        return found
    dataset, folder = last
    if not _same(folder.parent, paths.data_dir):
        found["data"] = (f"the last download, {dataset}, went to {folder}, not into "
                         f"{paths.data_dir}: pass `--data-dir {folder.parent}`")
    rerun = "rec preprocess" if "data" not in found else f"rec --data-dir {folder.parent} preprocess"
    pre, down = stages.get("preprocess"), stages.get("download")
    read = (pre or {}).get("inputs")
    read = list(read) if isinstance(read, dict) else []
    if pre and read and not any(_same(Path(p), folder) for p in read):
        if _order(down) > _order(pre):
            found["preprocess"] = (f"preprocess read {read[0]}, but {dataset} was downloaded "
                                   f"since, into {folder}: run `{rerun}` again")
    return found


def _order(entry: dict | None) -> int:
    order = (entry or {}).get("order")
    return order if isinstance(order, int) else 0
