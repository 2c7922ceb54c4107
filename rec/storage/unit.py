"""Multi-file artifacts as one unit: the one way rec publishes and reads a folder of files.

The unit's folder holds UNIT (unit.json): the run id, the sha256 and the size of each file
(in subfolders too: "user_tower/model.pdiparams"), and the names of the JSON files that carry
the run id themselves (key "run_id"). A writer builds the folder beside the old one, seals
it and swaps it in whole (`sealed_dir`, over rec.storage.atomic.atomic_dir); a reader opens
it once (rec.storage.snapshot) and checks what it read against the seal (`read`, or `check`
for a reader with files of its own). The check catches a mixture however it arose (a copy by
hand, an old rec, a half-restored backup). A reader that maps big files rather than reading
them (output/dataset's arrays, rec.datasets.contract) checks those by their size alone
(`check`'s `sized`): their sha256 stay in UNIT for a full check.

(output/features, output/model/best, output/ctr/model, output/dataset, output/export.)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import time
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from rec.errors import UsageError
from rec.storage import snapshot as snapshots
from rec.storage.atomic import atomic_dir, file_hash, write_json

T = TypeVar("T")

UNIT = "unit.json"
CONTENT = "content"  # sealed_dir's run_id for a unit whose id is its files' digests


def new_run_id() -> str:
    """A fresh run id: the time it started and a random part."""
    return time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(4)


def sha256(path: Path) -> str:
    return file_hash(path, "sha256")


@contextlib.contextmanager
def sealed_dir(folder: Path | str, run_id: str | None = None,
               tagged: tuple[str, ...] = ()) -> Iterator[Path]:
    """atomic_dir(folder), sealed before the swap: UNIT holds the sha256 and the size of
    every file the block writes into the yielded folder (at any depth, named by its path
    relative to it), except the `tagged` JSON files, which hold "run_id": run_id themselves
    (the block writes them so). run_id CONTENT: the id is a digest of the files' digests,
    so a stage that writes the same bytes again (preprocess is deterministic) writes the same
    unit, byte for byte; a fresh id (new_run_id) when None."""
    if run_id == CONTENT and tagged:
        raise ValueError("a unit named by its content has no tagged files")
    with atomic_dir(folder) as tmp:
        yield tmp
        hashed = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*")
                        if p.is_file() and p.name not in (UNIT, *tagged))
        digests = {n: sha256(tmp / n) for n in hashed}
        if run_id == CONTENT:
            run_id = hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()[:24]
        write_json(tmp / UNIT, {"run_id": run_id or new_run_id(), "sha256": digests,
                                "bytes": {n: (tmp / n).stat().st_size for n in hashed},
                                "tagged": list(tagged)})


def read(folder: Path | str, run: str, load: Callable[[snapshots.Snapshot], T],
         sized: tuple[str, ...] = (), needed: tuple[str, ...] = ()) -> T:
    """load(a Snapshot of the unit `folder`), then `check` of what it read (no tagged files;
    `sized` and `needed` as there): every file from one run of `run`, read again whole when
    a swap replaced the folder meanwhile (rec.storage.snapshot.read)."""
    def checked(snapshot: snapshots.Snapshot) -> T:
        result = load(snapshot)
        check(snapshot, run, {}, snapshot.loaded, sized, needed)
        return result

    return snapshots.read(folder, checked)


def run_of(folder: Path | str) -> str | None:
    """The run id the unit in `folder` records, read alone and unchecked (None: no readable
    unit.json): for a hint, never to vouch for the files."""
    try:
        return str(json.loads((Path(folder) / UNIT).read_text())["run_id"])
    except (OSError, ValueError, TypeError, KeyError):
        return None


def sealed_bytes(folder: Path | str, name: str) -> bytes | None:
    """The bytes of the file `name` of the unit `folder` when its UNIT names it with these
    very bytes' sha256; None otherwise (no such file, no seal, another file's digest)."""
    folder = Path(folder)
    try:
        data = (folder / name).read_bytes()
        sealed = json.loads((folder / UNIT).read_text())["sha256"][name]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return data if hashlib.sha256(data).hexdigest() == sealed else None


def listed(snapshot) -> set[str]:
    """The names of the files whose sha256 the unit in `snapshot` (rec.storage.snapshot.Snapshot)
    records (none when UNIT is missing or damaged: `check` says so)."""
    try:
        return set(json.loads(snapshot.read_text(UNIT))["sha256"])
    except (OSError, ValueError, TypeError, KeyError):
        return set()


def check(snapshot, run: str, tagged: dict[str, object], loaded: dict[str, bytes],
          sized: tuple[str, ...] = (), needed: tuple[str, ...] = ()) -> str:
    """The unit's run id, if every file in the folder `snapshot` (rec.storage.snapshot.Snapshot)
    belongs to it; else a one-line error (exit 2) naming `run`, the command that writes the
    unit again. `tagged` maps each JSON file's name to the run id found in it; `loaded` holds
    the bytes of the files the reader has read (hashed as they were read, so what is checked
    is what was loaded, not read twice); the files named in `sized` are checked by their
    size alone (a reader maps them: hashing them would read them whole); the other files
    are hashed through `snapshot`. The files in `needed` and `sized` must be in the unit."""
    folder = snapshot.path

    def refuse(why: str):
        raise UsageError(f"{folder} does not hold one complete run ({why}): run `{run}` again")

    def digest_of(name: str) -> str | None:
        if name in loaded:
            return hashlib.sha256(loaded[name]).hexdigest()
        return snapshot.sha256(name) if snapshot.is_file(name) else None

    try:
        unit = json.loads(snapshot.read_text(UNIT))
        run_id, digests = unit["run_id"], dict(unit["sha256"])
        sizes = dict(unit["bytes"]) if sized else {}
    except FileNotFoundError:
        refuse(f"no {UNIT}")
    except (ValueError, TypeError, KeyError):
        refuse(f"{UNIT} is damaged")
    for name in (*needed, *sized):
        if name not in digests or (name in sized and name not in sizes):
            refuse(f"{UNIT} does not list {name}")
    for name, digest in digests.items():
        if name in sized and name not in loaded:
            if snapshot.size(name) != sizes[name]:
                refuse(f"{name} is not the one written with the rest")
        elif digest_of(name) != digest:
            refuse(f"{name} is not the one written with the rest")
    for name, found in tagged.items():
        if found != run_id:
            refuse(f"{name} belongs to run {found}, the rest to run {run_id}")
    return run_id
