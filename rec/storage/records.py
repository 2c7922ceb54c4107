"""A stage's manifest entry sealed in the unit it publishes, so that a run stopped between
the unit's swap and the manifest's write keeps its record with its unit.

`rec.storage.manifest.record` writes a finished stage's entry at once. A stage that
publishes a unit (train and ctr-train's model folders through rec.engine.trainer.publish,
save-features' folder) first makes its `Pending` entry (all but what the outputs are once
in place, rec.storage.manifest.entry), writes it into the unit as RECORD before the unit is
sealed and swapped in, then commits it. A kill -9 (or a full disk) between the swap and the
manifest's write left the new unit beside the previous run's record, which `rec status`
read as outputs modified by hand. Now:

  - `rec status` reads the unit's record in place of the manifest's (`sealed`): the stage
    is fresh, with the parameters it ran with;
  - the next writing stage writes it into the manifest (`restore`, from
    rec.storage.recovery.recover), its outputs fingerprinted then.

Each entry has a random "run": the manifest holds the unit's record when the runs match. A
unit sealed without a record (an older rec) is left as it is. preprocess's dataset is named
by its content (the same bytes for the same input, rec.storage.unit.CONTENT) and carries no
record: its window stays.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rec.console import log
from rec.jsontext import dumps
from rec.paths import Paths
from rec.storage import manifest, unit

RECORD = "record.json"


def units(paths: Paths) -> dict[Path, str]:
    """Each unit that carries its record -> the stage that publishes it."""
    return {paths.model.best: "train", paths.ctr.best: "ctr-train",
            paths.features_dir: "save-features"}


@dataclass
class Pending:
    """A stage's entry, to seal in its unit (`data`) and commit after the swap."""

    paths: Paths
    stage: str
    entry: dict

    @property
    def data(self) -> bytes:  # NaN as null, as the manifest writes it (never a failed seal)
        return dumps(self.entry, indent=1).encode("utf-8")

    def commit(self) -> None:
        manifest.commit(self.paths, self.stage, self.entry)


def pending(paths: Paths, stage: str, params: dict[str, Any], inputs: list[Path],
            outputs: list[Path], read_as: dict | None = None,
            resolved: dict[str, Any] | None = None) -> Pending:
    """manifest.record's arguments, the entry not yet written (`outputs`: every path the
    stage records, the unit's RECORD among them where it is a file of the record)."""
    return Pending(paths, stage, manifest.entry(paths, params, inputs, outputs, read_as,
                                                resolved))


def sealed(paths: Paths, stages: dict | None = None) -> dict[str, dict]:
    """{stage: the entry its unit carries} where the manifest's (`stages`, when read
    already) is another run's and does not describe the unit as it is (an older rec that
    republished a unit copies its record along), its paths pointed at this output folder."""
    if stages is None:
        stages = manifest.read(paths)[0]["stages"]
    found = {}
    for folder, stage in units(paths).items():
        data = unit.sealed_bytes(folder, RECORD)
        entry = None if data is None else _entry(data, paths, stage)
        current = stages.get(stage)
        if entry is None or (isinstance(current, dict) and (
                current.get("run") == entry["run"] or _describes(current, folder))):
            continue
        found[stage] = entry
    return found


def _describes(entry: dict, folder: Path) -> bool:
    """Whether a manifest entry records `folder` as it is now."""
    outputs, stats = entry.get("outputs"), entry.get("stats")
    key = manifest._abs(folder)
    if not isinstance(outputs, dict) or key not in outputs:
        return False
    return manifest.unchanged(key, outputs[key],
                              stats.get(key) if isinstance(stats, dict) else None, {})


def restore(paths: Paths) -> None:
    """Write into the manifest each unit's record it lacks (see the module docstring): not
    into one that cannot be read (the stage's own record replaces it, and the next writing
    stage adds these). Only while holding the output folder's lock
    (rec.storage.recovery.recover)."""
    recorded, why = manifest.read(paths)
    if why:
        return
    for stage, entry in sealed(paths, recorded["stages"]).items():
        manifest.commit(paths, stage, entry, "late")
        log(f"the manifest's record of `rec {stage}` was not the one its output carries (a run "
            "stopped as it published): put back from it")


def _entry(data: bytes, paths: Paths, stage: str) -> dict | None:
    """The sealed entry as manifest.entry made it, its paths under the output folder it
    was written in pointed at this one (a moved or copied folder); None when it is not,
    or when the manifest would not read it as `stage`'s entry (manifest._entry_problem:
    fingerprints, paths outside the output folder)."""
    try:
        entry = json.loads(data.decode("utf-8"))
    except ValueError:
        return None
    kinds = {"run": str, "command": str, "params": dict, "defaults": dict, "version": str,
             "time": str, "inputs": dict, "outputs": list, "output_dir": str}
    if not isinstance(entry, dict) or any(not isinstance(entry.get(k), t)
                                          for k, t in kinds.items()):
        return None
    # in the manifest's form, read as the manifest reads its entries: checked
    # (manifest._entry_problem), its paths pointed from the folder it was written in to this
    # one, and refused outside it but where a stage records them (manifest._relocated)
    stats = entry.get("input_stats")
    as_read = {**entry, "outputs": dict.fromkeys(entry["outputs"]), "order": 0,
               "stats": stats if isinstance(stats, dict) else {}}
    if manifest._entry_problem(stage, as_read) or manifest._relocated(
            {"stages": {stage: as_read}, "output_dir": entry["output_dir"]}, paths):
        return None
    entry.update(inputs=as_read["inputs"], outputs=list(as_read["outputs"]),
                 input_stats=as_read["stats"],
                 **{k: as_read[k] for k in ("data_dir", "output_dir") if k in as_read})
    return entry
