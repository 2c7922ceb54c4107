"""The next run finishes what a killed one left halfway (rec.atomic's folder swaps).

Every folder under output/ that a stage swaps in whole is listed here with the stage that
writes it. A writing stage, holding the output folder's lock, repairs all of them before it
starts (`recover`): a folder missing after a kill between the two renames of its swap is
restored from the newest complete copy beside it, and the other leftovers (folders being
built, previous copies, temporary files) are removed.

A reader (recommend, similar, status, ctr-predict) takes no lock and never waits, so it
cannot tell a killed swap from one in progress. Only when a folder is missing and a complete
copy lies beside it does it try the lock, without waiting: free, it repairs as a writer
would (two renames, nothing rebuilt) and goes on; held, the writer holding it is swapping
that folder right now and the reader reads what is there; not takeable at all (a read-only
output folder), it says in one line which stage restores the folder.
"""

from __future__ import annotations

from pathlib import Path

from rec import atomic, lock
from rec.console import log, warn
from rec.errors import RecError
from rec.paths import Paths


def swapped_folders(paths: Paths) -> dict[Path, str]:
    """Each folder swapped in whole under output/ -> the stage that writes it."""
    return {paths.dataset_dir: "preprocess", paths.features_dir: "save-features",
            paths.model.checkpoint: "train", paths.ctr.best: "ctr-train",
            paths.ctr.checkpoint: "ctr-train", paths.ctr.staging.best: "ctr-train",
            paths.export_dir: "export"}


def _temporary_homes(paths: Paths) -> list[Path]:
    """The folders where files are written beside their targets (rec.atomic.atomic_path)."""
    return [paths.output_dir, paths.model_dir, paths.model.staging.best, paths.ctr_dir]


def recover(paths: Paths) -> None:
    """Repair every swapped folder under output/ and remove temporary leftovers. Only while
    holding the output folder's lock."""
    for folder in swapped_folders(paths):
        restored = atomic.repair(folder)
        if restored is not None:
            which = "new" if f".{atomic.COMPLETE}." in restored.name else "previous"
            log(f"{folder} was left halfway through its replacement by a killed run: "
                f"the {which} copy is back in place")
    for home in _temporary_homes(paths):
        atomic.sweep(home)


def recover_as_reader(paths: Paths, command: str | None) -> None:
    """A reader's repair: only a folder a killed swap left missing, only if the lock is
    free at once (see the module docstring)."""
    stuck = [f for f in swapped_folders(paths) if atomic.needs_repair(f)]
    if not stuck:
        return
    try:
        with lock.hold(paths.output_dir, command):
            recover(paths)
    except lock.Busy:
        return  # a writer is running: that swap is its own, in progress
    except (RecError, OSError):
        stage = swapped_folders(paths)[stuck[0]]
        warn(f"{stuck[0]} was left halfway through its replacement by a killed run and "
             f"cannot be restored from here: run `rec {stage}` (or any writing stage) in "
             f"{paths.output_dir} to restore it")
