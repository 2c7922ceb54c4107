"""output/manifest.json: what each stage ran with, what it read and what it wrote.

Fingerprints let `rec status` say a stage is stale: its inputs changed since it ran.
Each path's stats are recorded beside its fingerprint (rec.storage.fingerprints): `rec
status` hashes only what changed since (as make and git do), so it reads none of the
dataset's or the models' megabytes on every run. A stage that publishes a unit records
itself in two steps, `entry` then `commit`, the entry sealed in the unit meanwhile
(rec.storage.records).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from rec import __version__
from rec.storage.atomic import write_json
# the fingerprints of files and folders (named here too, where callers found them)
from rec.storage.fingerprints import (CONTENT, FOLDER_FILES, TOO_MANY,  # noqa: F401
                                      file_fingerprint, file_stat, fingerprint, folder_stats,
                                      read_version, unchanged)
from rec.console import warn
from rec.errors import UsageError
from rec.paths import Paths

# The stages in pipeline order, with what each one needs before it can run.
STAGES = ["download", "preprocess", "train", "save-features", "ctr-train", "evaluate"]
UPSTREAM = {
    "preprocess": "download",
    "train": "preprocess",
    "evaluate": "train",
    "save-features": "train",
    "ctr-train": "preprocess",
}


# --- reading it: what rec wrote, or "unreadable" ----------------------------------------------

RECORDED = STAGES + ["export"]  # the stages that record themselves
MAX_BYTES = 1 << 22  # rec writes a few kB
# Paths outside the output folder are recorded by these only: the dataset folder a download
# wrote and preprocess read, the Criteo files ctr-train read.
OUTSIDE = {("download", "outputs"), ("preprocess", "inputs"), ("ctr-train", "inputs")}
_FIELDS = {"command": str, "params": dict, "version": str, "time": str, "inputs": dict,
           "outputs": dict, "order": int}


def _entry_problem(stage: Any, entry: Any) -> str | None:
    """Why one stage's entry is not as `record` writes it (names, types, ranges), or None."""
    if stage not in RECORDED:
        return f"unknown stage {str(stage)[:40]!r}"
    if not isinstance(entry, dict):
        return f"{stage}: not an object"
    for key, kind in _FIELDS.items():
        value = entry.get(key)
        if key in ("inputs", "outputs") and value is None:
            return f"{stage}: no {key}"
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            return f"{stage}: {key} is not a{'n' if kind is int else ''} {kind.__name__}"
    if not 0 <= entry.get("order", 0) < 2 ** 63:
        return f"{stage}: order out of range"
    for key in ("inputs", "outputs"):
        for name, digest in entry[key].items():
            if not (digest is None or isinstance(digest, str) and len(digest) <= 64):
                return f"{stage}: a fingerprint of its {key} is not a short string"
            if not Path(name).is_absolute():
                return f"{stage}: {key} path {name[:60]!r} is not absolute"
    return None


def _relocated(obj: dict, paths: Paths) -> str | None:
    """Point the paths recorded under the folder the manifest was written in (its
    "output_dir") at the folder it is in now, so that a copied or moved output folder keeps
    its record; why not, when a path lies outside both where no stage records one. A whole
    project moved (its output folder and an entry's data folder, its "data_dir", moved
    together: the same relative path from one to the other before and now) has that entry's
    data paths pointed at the data folder in use too, so that a copy is checked against its
    own data; a data folder elsewhere (`--data-dir`), or an entry from before "data_dir",
    keeps them as they are."""
    here = Path(_abs(paths.output_dir))
    there = obj.get("output_dir", str(here))
    if not isinstance(there, str) or not Path(there).is_absolute():
        return "output_dir is not an absolute path"
    data_here = Path(_abs(paths.data_dir))
    for stage, entry in obj["stages"].items():
        # the entry's data folder and the output folder it was recorded with: a pair that
        # only moves together (a later write into the moved output folder, run with another
        # data folder, leaves it as it was, to be moved on a later read)
        data_there = entry.get("data_dir")
        out_then = entry.setdefault("output_dir", there) if data_there is not None else there
        data_move = None  # (old, new) of the entry's data paths; None: they stay
        if data_there is not None:
            for name, value in (("data_dir", data_there), ("output_dir", out_then)):
                if not isinstance(value, str) or not Path(value).is_absolute():
                    return f"{stage}: {name} is not an absolute path"
            if Path(out_then) != here and os.path.relpath(data_there, out_then) == \
                    os.path.relpath(data_here, here):
                data_move = Path(data_there), data_here
                entry["data_dir"], entry["output_dir"] = str(data_here), str(here)

        def moved(name: str) -> Path:
            path = Path(name)
            # a path follows the folder it is deepest in: a data path its pair's rule even
            # inside the output folder (--data-dir in it: it moves with the pair or stays),
            # an output path the output folder's even inside the data folder (--data-dir .)
            in_data = data_there is not None and path.is_relative_to(data_there)
            in_output = path.is_relative_to(there)
            if in_data and not (in_output and Path(there).is_relative_to(data_there)):
                return data_move[1] / path.relative_to(data_move[0]) if data_move else path
            return here / path.relative_to(there) if in_output else path
        for key in ("inputs", "outputs"):
            now = {}
            for name, digest in entry[key].items():
                path = moved(name)
                if path == Path(name) and (stage, key) not in OUTSIDE and \
                        not Path(_abs(path)).is_relative_to(here):
                    return (f"{stage}: {key} path {name[:60]!r} is outside {paths.output_dir}, "
                            f"where rec writes")
                now[str(path)] = digest
            entry[key] = now
        stats = entry.get("stats")
        if isinstance(stats, dict):  # the sizes and mtimes that spare `status` a hash
            entry["stats"] = {str(moved(n)): v for n, v in stats.items()}
    obj["output_dir"] = str(here)
    return None


def read(paths: Paths) -> tuple[dict, str | None]:
    """(the manifest, None); ({"stages": {}}, None) when there is none; ({"stages": {}},
    why) when there is one rec cannot use (damaged, hand-edited, from elsewhere): not JSON,
    too large or deep, wrong types, unknown stages, paths outside the output folder."""
    empty: dict = {"stages": {}}
    try:
        if paths.manifest.stat().st_size > MAX_BYTES:
            return empty, f"larger than {MAX_BYTES >> 20} MiB"
        obj = json.loads(paths.manifest.read_text(encoding="utf-8"),
                         parse_constant=_no_constant)
        # rec writes UTF-8: a "\ud800" escape (a lone surrogate) could not be written back
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except FileNotFoundError:
        return empty, None
    except OSError as e:  # a folder, not readable, ...
        return empty, e.strerror or str(e)
    except (ValueError, RecursionError) as e:  # not JSON, not UTF-8, nested too deep, NaN
        return empty, f"not JSON rec writes ({type(e).__name__})"
    stages = obj.get("stages") if isinstance(obj, dict) else None
    if not isinstance(stages, dict):
        return empty, 'not an object with "stages"'
    why = next(filter(None, (_entry_problem(k, v) for k, v in stages.items())), None)
    why = why or _relocated(obj, paths)
    return (empty, why) if why else (obj, None)


def _no_constant(name: str):
    """NaN and Infinity are not JSON, and rec never writes them (rec.jsontext.finite)."""
    raise ValueError(f"{name} is not a JSON number")


def unreadable(paths: Paths, why: str) -> str:
    return f"{paths.manifest} is unreadable ({why}): it is not a manifest rec wrote"


def load(paths: Paths) -> dict:
    """The manifest; a missing or unreadable one reads as empty (its stages show 'not run')."""
    return read(paths)[0]


# The running command's option defaults (rec.stages.stage sets them for a writing command;
# each stage is its own `rec` process, a pipeline's too): record() keeps those of the
# parameters it records, so that `rec status` can show what a run changed. A default that
# stands for a value the stage picks (None, 0 = auto) is recorded as the value picked
# (record's `resolved`): synthetic data's seed 42 is no change from --seed's None.
_option_defaults: dict[str, Any] = {}


def set_option_defaults(defaults: dict[str, Any]) -> None:
    _option_defaults.clear()
    _option_defaults.update(defaults)


def record(paths: Paths, stage: str, params: dict[str, Any], inputs: list[Path],
           outputs: list[Path], read_as: dict[Path, str | None] | None = None,
           resolved: dict[str, Any] | None = None) -> None:
    """Record a finished stage (atomically rewriting the manifest; an unreadable one is
    replaced, with a warning). `read_as` holds the fingerprints of inputs taken as they were
    read (a folder another command may replace since: the record must say what was read).
    `resolved`: what this run makes of options whose default is None or 0 = auto, recorded
    as their defaults. A stage that publishes a unit seals its `entry` in it first
    (rec.storage.records) and `commit`s it after the swap."""
    commit(paths, stage, entry(paths, params, inputs, outputs, read_as, resolved))


def entry(paths: Paths, params: dict[str, Any], inputs: list[Path], outputs: list[Path],
          read_as: dict[Path, str | None] | None = None,
          resolved: dict[str, Any] | None = None) -> dict:
    """A stage's entry as `record` writes it, but for what its outputs are once in place
    (their fingerprints and stats) and its order: those `commit` adds. "run" tells one
    run's entry from another's; "output_dir" and "data_dir" are where its paths point."""
    defaults = {**_option_defaults, **{k: v for k, v in (resolved or {}).items()
                                       if k in _option_defaults}}
    read = {p: (read_as or {}).get(p) or read_version(p) for p in inputs}
    return {
        "run": secrets.token_hex(8),
        "command": " ".join(["rec"] + sys.argv[1:]),
        "params": params,
        "defaults": {k: defaults[k] for k in params if k in defaults},
        "version": __version__,
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "inputs": {_abs(p): fp for p, fp in read.items()},
        # each input's stats as it was hashed (read_version): they vouch for that version
        "input_stats": {_abs(p): getattr(fp, "stats", None) for p, fp in read.items()},
        "outputs": [_abs(p) for p in outputs],
        "output_dir": _abs(paths.output_dir),
        "data_dir": _abs(paths.data_dir),
    }


def commit(paths: Paths, stage: str, pending: dict, mode: str = "now") -> None:
    """Write `entry`'s `pending` entry into the manifest (as_written's `mode`)."""
    manifest, why = read(paths)
    if why:
        warn(f"{unreadable(paths, why)}; replaced by a new one that records this {stage} "
             f"alone")
    order = max((e.get("order") for e in manifest["stages"].values()
                 if isinstance(e.get("order"), int)), default=0) + 1
    manifest.setdefault("stages", {})[stage] = {
        **as_written(pending, mode),
        "order": order,  # which of two stages ran last (`time` has whole seconds only)
    }
    manifest["output_dir"] = _abs(paths.output_dir)  # where its paths point
    write_json(paths.manifest, manifest)


def as_written(pending: dict, mode: str) -> dict:
    """`entry`'s `pending` entry as `commit` writes it (but for its order), its outputs
    fingerprinted now. The inputs' stats: "now", as they were when hashed (right after the
    run); "late", now, where their hash still is the one recorded (a record written long
    after its run, rec.storage.records.restore: one hash each); "none" (`rec status`
    reading a unit's own record: no hash, status hashes them)."""
    inputs, outputs = pending["inputs"], pending["outputs"]
    stats = {p: file_stat(Path(p)) for p in outputs}  # stat, then hash (a change shows)
    if mode == "now":
        stats.update((pending.get("input_stats") or {}).items())
    elif mode == "late":
        for p, fp in inputs.items():
            now = read_version(Path(p))
            stats[p] = now.stats if now is not None and now == fp else None
    return {
        **{k: pending[k] for k in ("run", "command", "params", "defaults", "version", "time")},
        # the folders the paths were recorded under, for a read after the project moved
        **{k: pending[k] for k in ("data_dir", "output_dir") if k in pending},
        "inputs": inputs,
        "outputs": {p: fingerprint(Path(p)) for p in outputs},
        "stats": {p: st for p, st in stats.items() if st is not None},
    }


def fingerprints(inputs: list) -> dict:
    """record's `read_as` for inputs hashed now, as a stage starts reading them: not at its
    end, inside trainer.publish, where Ctrl-C waits (a Criteo day file is ~90 s of hashing);
    each with its stats as it was hashed (read_version)."""
    return {p: read_version(p) for p in inputs}


def stage_state(entry: dict | None, hashed: dict | None = None) -> str:
    """'not run', 'fresh', 'stale' (inputs changed), 'missing' (a folder or file it
    wrote is gone) or 'modified' (its outputs changed).
    A file whose size and mtime are the recorded ones is not read; `hashed` (path ->
    fingerprint) keeps the files hashed for one stage for the next."""
    if entry is None:
        return "not run"
    hashed = {} if hashed is None else hashed
    stats = entry.get("stats") if isinstance(entry.get("stats"), dict) else {}
    inputs = entry.get("inputs")
    for p, fp in (inputs if isinstance(inputs, dict) else {}).items():
        if not unchanged(p, fp, stats.get(p), hashed):
            return "stale"
    changed = changed_outputs(entry, hashed)
    if any(not os.path.lexists(p) or _sealed_file_gone(p) for p in changed):
        return "missing"
    return "modified" if changed else "fresh"


def _sealed_file_gone(path: str) -> bool:
    """Whether `path` is a sealed folder (rec.storage.unit: output/model/best) one of whose
    files is gone: a deleted model.pdparams read as 'modified', the folder being there."""
    from rec.storage.unit import UNIT

    try:
        names = json.loads((Path(path) / UNIT).read_text())["sha256"]
        return any(not (Path(path) / name).exists() for name in names)
    except (OSError, ValueError, TypeError, KeyError):  # no folder, or no (readable) seal
        return False


def changed_outputs(entry: dict, hashed: dict) -> list[str]:
    """The outputs of a stage's `entry` that are no longer what it wrote (changed or gone),
    whatever its inputs say (stage_state's `hashed`)."""
    stats = entry.get("stats") if isinstance(entry.get("stats"), dict) else {}
    outputs = entry.get("outputs")
    return [p for p, fp in (outputs if isinstance(outputs, dict) else {}).items()
            if not unchanged(p, fp, stats.get(p), hashed)]


# --- which dataset: the one downloaded last, into the data folder in use --------------------


def last_download(paths: Paths) -> tuple[str, Path] | None:
    """(dataset, folder) of the last `rec download` recorded in this output folder."""
    entry = load(paths)["stages"].get("download") or {}
    params, outputs = entry.get("params"), entry.get("outputs")
    dataset = params.get("dataset") if isinstance(params, dict) else None
    if not isinstance(dataset, str) or not isinstance(outputs, dict) or len(outputs) != 1:
        return None
    return dataset, Path(next(iter(outputs)))


def _abs(path) -> str:
    """An absolute path as the user named it: symlinks kept (a symlinked output/dataset is
    still under the output folder), ".." and "." gone."""
    return os.path.abspath(path)


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
