"""`rec status`: which stages have run, when, with what, and whether they are still fresh."""

from __future__ import annotations

import typer

from rec import manifest
from rec.build_info import paddle_build
from rec.console import emit, log, warn
from rec.errors import RecError
from rec.stages import get_paths, guarded
from rec.stages.options import Format
from rec.texttable import KEEP

HELP = "Show which stages have run, when, with which parameters, and whether they are stale."
KEY_PARAMS = 4  # parameters shown per stage; the manifest has them all


@guarded
def command(
    ctx: typer.Context,
    fmt: Format = "auto",
) -> None:
    paths = get_paths(ctx)
    log(f"paddle: {paddle_build()}")
    recorded, why = manifest.read(paths)
    if why:  # exit 1, as for any damaged file: a script asking what ran must not read "nothing"
        raise RecError(f"{manifest.unreadable(paths, why)}; the next writing stage replaces "
                       f"it, or remove it")
    stages = recorded["stages"]
    names = manifest.STAGES + [s for s in stages if s not in manifest.STAGES]
    mismatched = manifest.mismatches(paths, stages)
    for why in mismatched.values():
        warn(why)
    rows, hashed = [], {}  # a file read by several stages is hashed once
    for name in names:
        entry = stages.get(name)
        params = (entry or {}).get("params")
        params = params if isinstance(params, dict) else {}
        rows.append({
            "stage": name,
            "state": "stale" if name in mismatched and entry else manifest.stage_state(entry, hashed),
            "when": (entry or {}).get("time", ""),
            "params": " ".join(f"{k}={v}" for k, v in list(params.items())[:KEY_PARAMS]),
        })
    emit(rows, ["stage", "state", "when", "params"], fmt, title=f"rec status ({paths.output_dir})",
         layout={"stage": KEEP, "state": KEEP, "when": KEEP})
