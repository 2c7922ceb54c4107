"""The next run finishes what a killed one left halfway (rec.storage.atomic's folder swaps).

Every folder under output/ that a stage swaps in whole is listed here with the stage that
writes it. A writing stage, holding the output folder's lock, repairs all of them before it
starts (`recover`): a folder missing after a kill between the two renames of its swap is
restored from the newest complete copy beside it, and the other leftovers (folders being
built, previous copies, temporary files) are removed. rec train's model, published file by
file, is published again if a kill left its weights and config.json of different runs.

A reader (recommend, similar, status, ctr-predict) never waits, and cannot tell a killed
swap from one in progress by the names alone. Only when it finds leftovers does it try the
lock, without waiting: free, no writer is running, so they are a killed run's and it repairs
as a writer would (renames and removals, nothing rebuilt) and goes on; held, they belong to
the running writer and the reader reads what is there; not takeable at all (a read-only
output folder), it says in one line, if a folder is missing, which stage restores it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from rec.storage import atomic, lock, unit
from rec.console import log, warn
from rec.errors import RecError
from rec.paths import CONFIG, METRICS, Paths, TrainingFolder


def swapped_folders(paths: Paths) -> dict[Path, str]:
    """Each folder swapped in whole under output/ -> the stage that writes it."""
    return {paths.dataset_dir: "preprocess", paths.features_dir: "save-features",
            paths.model.checkpoint: "train", paths.ctr.best: "ctr-train",
            paths.ctr.checkpoint: "ctr-train", paths.ctr.staging.best: "ctr-train",
            paths.export_dir: "export"}


def _temporary_homes(paths: Paths) -> list[Path]:
    """The folders where files are written beside their targets (rec.storage.atomic.atomic_path)."""
    return [paths.output_dir, paths.model_dir, paths.model.staging.best, paths.ctr_dir]


def repair(folder: Path) -> None:
    """rec.storage.atomic.repair, saying which copy of `folder` it put back, if any."""
    restored = atomic.repair(folder)
    if restored is not None:
        which = "new" if f".{atomic.COMPLETE}." in restored.name else "previous"
        log(f"{folder} was left halfway through its replacement by a killed run: the {which} "
            "copy is back in place")


def recover(paths: Paths) -> None:
    """Repair every swapped folder under output/ and remove temporary leftovers. Only while
    holding the output folder's lock."""
    for folder in swapped_folders(paths):
        repair(folder)
    for home in _temporary_homes(paths):
        atomic.sweep(home)
    if _metrics_behind(paths):
        copy_metrics_beside(paths.ctr)
        log(f"{paths.ctr.metrics} was left behind its model by a killed `rec ctr-train`: "
            "it now describes the model in place")
    if _publish_unfinished(paths):
        unit.publish_files(paths.model.staging.best, paths.model_dir, CONFIG)
        shutil.rmtree(paths.model.staging.best, ignore_errors=True)  # as publish does
        log(f"{paths.model.params} and {paths.model.config} were left halfway through their "
            f"replacement by a killed `rec train`: the run's best model is now in place")


def copy_metrics_beside(folder: TrainingFolder) -> None:
    """The copy of metrics.json inside a best folder of its own (output/ctr/model), copied
    to the run's metrics.json: the last step of rec.engine.trainer.publish, and its repair."""
    atomic.write_bytes(folder.metrics, (folder.best / METRICS).read_bytes())


def _metrics_behind(paths: Paths) -> bool:
    """rec ctr-train swaps its model folder in with a copy of the run's metrics.json inside,
    then copies it beside: killed between the two, output/ctr/metrics.json is the previous
    run's."""
    inside, beside = paths.ctr.best / METRICS, paths.ctr.metrics
    try:
        return inside.is_file() and (not beside.is_file()
                                     or inside.read_bytes() != beside.read_bytes())
    except OSError:
        return False


def _publish_unfinished(paths: Paths) -> bool:
    """rec train publishes its best model file by file (rec.storage.unit.publish_files): killed
    between the weights and config.json, output/model holds weights its config does not
    name, and the run's complete best model is still in best-of-run/. (A run killed while
    training has published nothing: its model files still agree.)"""
    staged, model = paths.model.staging, paths.model
    if not (staged.config.is_file() and staged.params.is_file() and model.params.is_file()):
        return False
    try:
        digest = json.loads(staged.config.read_text(encoding="utf-8"))[unit.PARAMS_DIGEST]
        named = json.loads(model.config.read_text(encoding="utf-8")).get(unit.PARAMS_DIGEST) \
            if model.config.is_file() else None
        return unit.sha256(staged.params) == digest and unit.sha256(model.params) != named
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return False  # not this case: the readers' own checks report it


def recover_as_reader(paths: Paths, command: str | None) -> None:
    """A reader's repair: only if a killed run left something, only if the lock is free at
    once (see the module docstring)."""
    if lock.is_worker():  # inside a --nproc job: its launcher holds the lock
        return
    folders = swapped_folders(paths)
    if not (any(atomic.leftovers(f) for f in folders)
            or any(atomic.temporaries(h) for h in _temporary_homes(paths))
            or _publish_unfinished(paths) or _metrics_behind(paths)):
        return
    try:
        with lock.hold(paths.output_dir, command):
            recover(paths)
    except lock.Busy:
        return  # a writer is running: what is beside its folders is its own, in progress
    except (RecError, OSError):
        missing = [f for f in folders if atomic.needs_repair(f)]
        if _publish_unfinished(paths):
            missing.append(paths.model.params)
        if missing:
            stage = folders.get(missing[0], "train")
            warn(f"{missing[0]} was left halfway through its replacement by a killed run and "
                 f"cannot be restored from here: run `rec {stage}` (or any writing stage) in "
                 f"{paths.output_dir} to restore it")
