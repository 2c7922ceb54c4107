"""`rec export`'s work: every trained network as a static inference model for serving, in
output/export/ (the layout: rec.stages.export's docstring). The two-tower's user and movie
towers (rec.twotower.export), and the model in output/ctr/model when there is one: the rank
stage's network (rec.rank.export) or a CTR model's (rec.ctr.export). Each is loaded back as
a server would and checked on real rows (rec.engine.inference.export) before anything is
written; the folder is built aside, sealed (rec.storage.unit) and swapped in whole.

It lives in rec/ctr, the package at the top of the domain (rec.ctr may import the two-tower
and the rank stage, neither of which imports it): the export takes networks from all three.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from rec.paths import USER_VECTORS, Paths, read_json


def export_all(paths: Paths, to: str) -> dict:
    """Export, verify and publish every network (the module's docstring); the summary."""
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


def _ctr_kind(paths: Paths) -> str | None:
    """"rank" when output/ctr/model holds the rank stage, else the CTR model's kind."""
    return read_json(paths.ctr.config, "rec ctr-train", keys=("features",))["features"].get("kind")
