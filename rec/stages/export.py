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
of every file, rec.storage.unit) and swapped in whole.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer

from rec.console import log

from rec.results import emit_object
from rec.errors import UsageError
from rec.paths import USER_VECTORS
from rec.stages import get_paths, stage
from rec.stages.options import Format

HELP = ("Export the trained towers (and the CTR model) as static Paddle Inference models or "
        "ONNX in output/export, each verified against the trained model before it is written.")
TARGETS = ("paddle", "onnx")


def export_all(paths, to: str) -> dict:
    from rec.storage import manifest
    from rec.storage import unit
    from rec.storage.atomic import write_json
    from rec.datasets.contract import dataset_identity, dataset_paths, load_dataset
    from rec.engine.inference import export, onnx_modules  # imports paddle
    from rec.twotower import export as towers
    from rec.twotower import kinds
    from rec.twotower.features import load_features

    import paddle

    if to == "onnx":
        onnx_modules()  # before any work: what to install
    paddle.set_device("cpu")
    ds = load_dataset(paths)
    model, _ = kinds.load_trained(paths, ds)
    features = load_features(paths.features_dir) if paths.features_dir.exists() else None
    nets = towers.networks(model, ds, features)
    if paths.ctr.params.exists() and _ctr_kind(paths) == "rank":
        from rec.rank import export as rank_export

        nets.append(rank_export.network(paths, ds, features))
    elif paths.ctr.params.exists():
        from rec.ctr import export as ctr_export

        nets.append(ctr_export.network(paths))
    folder = paths.export_dir
    described = {"format": to, "paddle": paddle.__version__,
                 "dataset_fingerprint": dataset_identity(paths), "models": {}}
    with tempfile.TemporaryDirectory(prefix="rec-export-") as scratch, unit.sealed_dir(folder) as tmp:
        for net in nets:
            described["models"][net.name] = export(net, tmp / net.name, to, Path(scratch))
        described["scoring"] = towers.scoring(model, features)
        write_json(tmp / "export.json", described)
    inputs = dataset_paths(paths) + [paths.model.params]
    if features is not None:
        inputs.append(paths.features_dir / USER_VECTORS)
    if paths.ctr.params.exists():
        inputs.append(paths.ctr.params)
    manifest.record(paths, "export", {"to": to}, inputs=inputs,
                    outputs=[folder])  # every file of it: status checks each one
    diffs = {f"{name}_max_abs_diff": max(m["verified"]["max_abs_diff"].values())
             for name, m in described["models"].items()}
    return {"to": to, "models": ",".join(described["models"]), **diffs,
            "output": str(folder)}


def _ctr_kind(paths) -> str | None:
    """"rank" when output/ctr/model holds the rank stage, else the CTR model's kind."""
    from rec.paths import read_json

    return read_json(paths.ctr.config, "rec ctr-train", keys=("features",))["features"].get("kind")


@stage(writes=("output",), into=("export_dir",))
def command(
    ctx: typer.Context,
    to: str = typer.Option("paddle", "--to", help="paddle (Paddle Inference) or onnx "
                           "(needs paddle2onnx and onnxruntime: pip install 'rec-paddle[onnx]')."),
    fmt: Format = "auto",
) -> None:
    if to not in TARGETS:
        raise UsageError(f"--to must be one of {', '.join(TARGETS)} (got {to!r})")
    summary = export_all(get_paths(ctx), to)
    log(f"exported {summary['models'].replace(',', ', ')} to {summary['output']}, each "
        "verified to 1e-5")
    emit_object(summary, fmt)
