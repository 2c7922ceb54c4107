"""Multi-file artifacts as one unit: the files of a unit share a run id, and a reader refuses
a folder whose files were not written together.

The unit's folder holds UNIT (unit.json): the run id, the sha256 of each binary file, and the
names of the JSON files that carry the run id themselves (key "run_id"). A writer builds the
folder beside the old one and swaps it in whole (rec.storage.atomic.atomic_dir); the check catches a
mixture however it arose (a copy by hand, an old rec, a half-restored backup).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import tempfile
import time
from pathlib import Path

from rec.storage.atomic import (FILE_MODE, _name_target, file_hash, fsync_dir, fsync_file,
                        write_json)
from rec.errors import UsageError

UNIT = "unit.json"


def new_run_id() -> str:
    """A fresh run id: the time it started and a random part."""
    return time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(4)


def sha256(path: Path) -> str:
    return file_hash(path, "sha256")


def seal(folder: Path, run_id: str, hashed: list[str], tagged: list[str]) -> Path:
    """Write UNIT into `folder`: the `hashed` files' sha256; the `tagged` JSON files hold
    "run_id": run_id themselves (the caller wrote them so)."""
    path = Path(folder) / UNIT
    write_json(path, {"run_id": run_id, "sha256": {n: sha256(Path(folder) / n) for n in hashed},
                      "tagged": list(tagged)})
    return path


def listed(snapshot) -> set[str]:
    """The names of the files whose sha256 the unit in `snapshot` (rec.storage.snapshot.Snapshot)
    records (none when UNIT is missing or damaged: `check` says so)."""
    try:
        return set(json.loads(snapshot.read_text(UNIT))["sha256"])
    except (OSError, ValueError, TypeError, KeyError):
        return set()


def check(snapshot, run: str, tagged: dict[str, object], loaded: dict[str, bytes]) -> str:
    """The unit's run id, if every file in the folder `snapshot` (rec.storage.snapshot.Snapshot)
    belongs to it; else a one-line error (exit 2) naming `run`, the command that writes the
    unit again. `tagged` maps each JSON file's name to the run id found in it; `loaded` holds
    the bytes of the files the reader has read (hashed as they were read, so what is checked
    is what was loaded, not read twice); the other files are hashed through `snapshot`."""
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
    except FileNotFoundError:
        refuse(f"no {UNIT}")
    except (ValueError, TypeError, KeyError):
        refuse(f"{UNIT} is damaged")
    for name, digest in digests.items():
        if digest_of(name) != digest:
            refuse(f"{name} is not the one written with the rest")
    for name, found in tagged.items():
        if found != run_id:
            refuse(f"{name} belongs to run {found}, the rest to run {run_id}")
    return run_id


PARAMS_DIGEST = "params_sha256"  # in a model's config.json: the sha256 of its weights


def check_digest(config: dict, path: Path, run: str) -> None:
    """Refuse (exit 2) a weights file that its config.json does not name (a config from one
    run beside the weights of another); a config without a digest is not checked."""
    digest = config.get(PARAMS_DIGEST)
    if digest is not None and sha256(path) != digest:
        raise UsageError(f"{path} is not the model its {Path(path).parent.name}/config.json "
                         f"describes (files of different runs): run `{run}` again")


def publish_files(staged: Path, dest: Path, config: str = "config.json") -> None:
    """Copy the files of `staged` into `dest` with replace_together (a write error puts the
    old files back), `config` (which names the weights' digest) last: until it lands,
    check_digest refuses the weights beside the old one. SIGINT and SIGTERM wait until all
    are copied (rec.process.interrupts); after a kill -9 midway, rec.storage.recovery copies them again."""
    from rec.process.interrupts import deferred

    files = sorted(p for p in Path(staged).iterdir() if p.is_file())
    with deferred():
        replace_together({Path(dest) / path.name: path
                          for path in sorted(files, key=lambda p: p.name == config)})


def replace_together(files: dict[Path, Path]) -> None:
    """Copy each source file onto its target ({target: source}) so that the targets end
    all old or all new, for files that belong together but are not one folder (weights and
    the config naming them): every copy is written and flushed beside its target first;
    then the targets are replaced one by one, each old one kept under a hard link until
    all are in, and put back if a later replace fails."""
    import shutil

    staged: dict[Path, Path] = {}
    kept: dict[Path, Path] = {}
    done: list[Path] = []
    current = None
    try:
        for current, source in files.items():
            current.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".{current.name}.", suffix=".tmp",
                                        dir=current.parent)
            os.close(fd)
            staged[current] = Path(name)
            shutil.copyfile(source, name)
            os.chmod(name, FILE_MODE)
            fsync_file(name)
        for current, tmp in staged.items():
            if current.exists():
                # ".tmp": a kill -9 leaves it to rec.storage.recovery's sweep
                kept[current] = current.with_name(f".{current.name}.{os.getpid()}.kept.tmp")
                os.link(current, kept[current])
            os.replace(tmp, current)
            done.append(current)
        fsync_dir(current.parent)
    except OSError as e:
        for target in done:  # back to the old files
            with contextlib.suppress(OSError):
                if target in kept:
                    os.replace(kept.pop(target), target)
                else:
                    target.unlink()
        if current is not None:
            _name_target(e, staged.get(current, current), current)
        raise
    finally:
        for path in [*staged.values(), *kept.values()]:
            with contextlib.suppress(OSError):
                path.unlink()
