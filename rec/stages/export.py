"""`rec export`: the trained networks as static inference models for serving, in
output/export/:

    user_tower/   model.json (or model.pdmodel) + model.pdiparams   user inputs -> user vectors
    movie_tower/  the same                                            movie inputs -> movie vectors
    ctr/          the same, when output/ctr holds a CTR model         fields -> click probability
    rank/         the same, when it holds the rank stage              candidate features -> logits
    export.json   files, inputs (names, dtypes, shapes), outputs, how scores combine

With --to onnx each folder holds model.onnx instead (paddle2onnx; onnxruntime checks it).
Every network is loaded back as a server would (paddle.inference, or onnxruntime) and run
on real rows before anything is written: it must reproduce the trained model's outputs
and the saved feature vectors to 1e-5, else exit 1 and output/export is left as it was.
The folder is built beside the old one, sealed (unit.json: the run id, the sha256 and size
of every file, rec.storage.unit) and swapped in whole. The work is rec/ctr/serving.py's.
"""

from __future__ import annotations

import typer

from rec.console import log
from rec.results import emit_object
from rec.errors import UsageError
from rec.stages import get_paths, stage
from rec.stages.options import Format

HELP = ("Export the trained towers (and the CTR model) as static Paddle Inference models or "
        "ONNX in output/export, each verified against the trained model before it is written.")
TARGETS = ("paddle", "onnx")


@stage(writes=("output",), into=("export_dir",))
def command(
    ctx: typer.Context,
    to: str = typer.Option("paddle", "--to", help="paddle (Paddle Inference) or onnx "
                           "(needs paddle2onnx and onnxruntime: pip install 'rec-paddle[onnx]')."),
    fmt: Format = "auto",
) -> None:
    if to not in TARGETS:
        raise UsageError(f"--to must be one of {', '.join(TARGETS)} (got {to!r})")
    from rec.ctr import serving

    summary = serving.export_all(get_paths(ctx), to)
    log(f"exported {summary['models'].replace(',', ', ')} to {summary['output']}, each "
        "verified to 1e-5")
    emit_object(summary, fmt)
