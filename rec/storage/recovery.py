"""The next run finishes what a killed one left halfway (rec.storage.atomic's folder swaps).

Every folder under output/ that a stage swaps in whole is listed here with the stage that
writes it. A writing stage, holding the output folder's lock, repairs all of them before it
starts (`recover`): a folder missing after a kill between the two renames of its swap is
restored from the newest complete copy beside it, and the other leftovers (folders being
built, previous copies, temporary files) are removed. (Every artifact of several files is
one folder swapped in whole, rec.storage.unit: there is nothing else to finish, but for
history.json beside a trained model, which is put back from the model's sealed copy:
`restore_histories`.)

A reader (recommend, similar, status, ctr-predict) never waits, and cannot tell a killed
swap from one in progress by the names alone. Only when it finds leftovers does it try the
lock, without waiting: free, no writer is running, so they are a killed run's and it repairs
as a writer would (renames, removals, history.json put back) and goes on; held, they belong to
the running writer and the reader reads what is there; not takeable at all (a read-only
output folder), it says in one line, if a folder is missing, which stage restores it.
"""

from __future__ import annotations

import json
from pathlib import Path

from rec.storage import atomic, lock, records, unit
from rec.console import log, warn
from rec.errors import RecError
from rec.paths import HISTORY, Paths


def swapped_folders(paths: Paths) -> dict[Path, str]:
    """Each folder swapped in whole under output/ -> the stage that writes it."""
    return {paths.dataset_dir: "preprocess", paths.features_dir: "save-features",
            paths.model.best: "train", paths.model.checkpoint: "train",
            paths.model.staging.best: "train", paths.ctr.best: "ctr-train",
            paths.ctr.checkpoint: "ctr-train", paths.ctr.staging.best: "ctr-train",
            paths.export_dir: "export"}


def _temporary_homes(paths: Paths) -> list[Path]:
    """The folders where files are written beside their targets (rec.storage.atomic.atomic_path)."""
    return [paths.output_dir, paths.model_dir, paths.ctr_dir]


def repair(folder: Path) -> None:
    """rec.storage.atomic.repair, saying which copy of `folder` it put back, if any."""
    restored = atomic.repair(folder)
    if restored is not None:
        which = "new" if f".{atomic.COMPLETE}." in restored.name else "previous"
        log(f"{folder} was left halfway through its replacement by a killed run: the {which} "
            "copy is back in place")


def recover(paths: Paths) -> None:
    """Repair every swapped folder under output/, remove temporary leftovers, put back
    the history.json of the model in place and the manifest's record of each unit that
    carries one (rec.storage.records). Only while holding the output folder's lock."""
    for folder in swapped_folders(paths):
        repair(folder)
    for home in _temporary_homes(paths):
        atomic.sweep(home)
    restore_histories(paths)
    records.restore(paths)


def restore_histories(paths: Paths) -> None:
    """history.json beside a published model is the history of the run that published it
    (rec.engine.trainer.publish writes it right after swapping the model in, and a copy
    inside the model): where it is not (a run stopped between the two, by a kill -9 or a
    full disk; the file removed or edited by hand), the model's copy replaces it. Only a
    copy the model's seal names as it is (unit.json's sha256) and that is a JSON list; a
    model published before it carried a copy is left as it is. A failed write is a
    warning: the stage that found it goes on (its own work does not read the file)."""
    for folder in (paths.model, paths.ctr):
        published = unit.sealed_bytes(folder.best, HISTORY)
        if published is None:  # no model, or no copy its seal names as it is
            continue
        try:
            beside = folder.history.read_bytes() if folder.history.exists() else None
        except OSError:
            continue
        if beside == published:
            continue
        try:
            if not isinstance(json.loads(published), list):
                continue
        except ValueError:
            continue
        try:
            atomic.write_bytes(folder.history, published)
        except OSError as e:
            warn(f"{folder.history} is not the published model's history and could not be "
                 f"put back from the model's copy: {e.strerror or e}")
            continue
        log(f"{folder.history} " + ("was missing" if beside is None else
                                    "did not match the published model's history")
            + " (a run stopped as it published, or the file was removed or edited): put "
            "back from the model's copy")


def recover_as_reader(paths: Paths, command: str | None) -> None:
    """A reader's repair: only if a killed run left something, only if the lock is free at
    once (see the module docstring)."""
    if lock.is_worker():  # inside a --nproc job: its launcher holds the lock
        return
    folders = swapped_folders(paths)
    if not (any(atomic.leftovers(f) for f in folders)
            or any(atomic.temporaries(h) for h in _temporary_homes(paths))):
        return
    try:
        with lock.hold(paths.output_dir, command):
            recover(paths)
    except lock.Busy:
        return  # a writer is running: what is beside its folders is its own, in progress
    except (RecError, OSError):
        missing = [f for f in folders if atomic.needs_repair(f)]
        if missing:
            stage = folders[missing[0]]
            warn(f"{missing[0]} was left halfway through its replacement by a killed run and "
                 f"cannot be restored from here: run `rec {stage}` (or any writing stage) in "
                 f"{paths.output_dir} to restore it")
