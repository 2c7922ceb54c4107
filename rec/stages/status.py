"""`rec status`: which stages have run, when, with what, and whether they are still fresh.

Every stage that records itself has a row (export too), "not run" when it never ran. A
stage is fresh only when every file of its artifacts is as it wrote them (each stage
records all of them: a folder's fingerprint covers each file's name and content, read
again only where a name, size or mtime changed: a copy or a `touch` is still fresh) and
its inputs are as it read them. The stage holding the output folder's lock now (rec.storage.lock
names it) is "running", whatever its last run left.
"""

from __future__ import annotations

import re
from pathlib import Path

import typer

from rec.storage import lock, manifest, records
from rec.build_info import paddle_build
from rec.console import log, warn
from rec.results import emit
from rec.errors import RecError
from rec.stages import get_paths, stage
from rec.stages.options import RowsFormat
from rec.storage.unit import UNIT
from rec.texttable import KEEP, NOTE

HELP = "Show which stages have run, when, with which parameters, and whether they are stale."
SHORT_PATH = 28  # a longer path among the table's parameters shows as …/its-file-name
HOLDER_RE = re.compile(r"rec (?P<stage>[\w-]+)\b.*?(?:\(pid (?P<pid>\d+)\))?$")


def running_stage(holder: str | None) -> tuple[str | None, str | None]:
    """(stage, pid) of the command holding the output folder's lock, as rec.storage.lock's note
    names it ("rec ctr-train (pid 42)"); (None, None) when none runs."""
    match = HOLDER_RE.match(holder or "")
    return (match["stage"], match["pid"]) if match else (None, None)


@stage
def command(
    ctx: typer.Context,
    fmt: RowsFormat = "auto",
) -> None:
    paths = get_paths(ctx)
    log(f"paddle: {paddle_build()}")
    recorded, why = manifest.read(paths)
    if why:  # exit 1, as for any damaged file: a script asking what ran must not read "nothing"
        raise RecError(f"{manifest.unreadable(paths, why)}; the next writing stage replaces "
                       f"it, or remove it")
    # a unit's own record where the manifest's is another run's: a run stopped between its
    # output's swap and the manifest's write (rec.storage.records), its outputs as they are
    stages = {**recorded["stages"], **{
        stage: manifest.as_written(entry, "none") for stage, entry in
        records.sealed(paths, recorded["stages"]).items()}}
    names = manifest.RECORDED + [s for s in stages if s not in manifest.RECORDED]
    mismatched = manifest.mismatches(paths, stages)
    for why in mismatched.values():
        warn(why)
    holder = lock.running(paths.output_dir)
    running, pid = running_stage(holder)
    if holder and running not in names:
        log(f"{paths.output_dir} is in use by `{holder}`")
    rows, hashed = [], {}  # a file read by several stages is hashed once
    edited: list[Path] = []  # outputs changed since their stage ran (in stage order)
    for name in names:
        entry = stages.get(name)
        params = (entry or {}).get("params")
        params = params if isinstance(params, dict) else {}
        if name == running:  # its files are being replaced: not fresh, not "not run"
            state, when = "running", f"now (pid {pid})" if pid else "now"
        else:
            state = ("stale" if name in mismatched and entry
                     else manifest.stage_state(entry, hashed))
            # what read a sealed unit (a folder with its unit.json: the model, the features,
            # the rank model) is stale once a file of it is edited or gone, whatever the
            # stage that wrote it says: its record names one file of the unit (the seal,
            # the weights), which such an edit leaves as it was, and no reader takes the
            # unit until it is written again (rec.storage.unit.read checks the seal). A
            # unit absent when it was read (fingerprint None) is compared as usual
            units = {Path(p).parent for p, fp in (entry or {}).get("inputs", {}).items()
                     if fp is not None and (Path(p).parent / UNIT).is_file()}
            if state == "fresh" and any(e.is_relative_to(u) for u in units for e in edited):
                state = "stale"
            if entry and state != "fresh":  # its outputs edited or gone, whatever its inputs
                edited += [Path(p) for p in manifest.changed_outputs(entry, hashed)]
            when = (entry or {}).get("time", "")
        defaults = (entry or {}).get("defaults")
        rows.append({
            "stage": name, "state": state, "when": when,
            "params": params if fmt == "json" else
            params_text(params, defaults if isinstance(defaults, dict) else {}, fmt == "table"),
        })
    # the table gives the parameters a line of their own under the stage's (the full width)
    emit(rows, ["stage", "state", "when", "params"], fmt, title=f"rec status ({paths.output_dir})",
         layout={"stage": KEEP, "state": KEEP, "when": KEEP, "params": NOTE})


def params_text(params: dict, defaults: dict, short_paths: bool) -> str:
    """The parameters a run changed from their defaults (all of them when the manifest, an
    older one, has no defaults), as key=value words; `short_paths`: a long path as its file
    name (…/ml-1m.zip), so that the table wraps between words, not inside a path."""
    words = []
    for key, value in params.items():
        if key in defaults and defaults[key] == value and type(defaults[key]) is type(value):
            continue
        text = str(value)
        if short_paths and "/" in text and len(text) > SHORT_PATH and text.rstrip("/"):
            text = "…/" + text.rstrip("/").rsplit("/", 1)[-1]
        words.append(f"{key}={text}")
    return " ".join(words)
