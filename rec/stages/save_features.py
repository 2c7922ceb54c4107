"""`rec save-features`: run both towers over every user and movie and save the vectors.

Writes output/features/usr_feat.pkl and mov_feat.pkl ({str(id): float32 vector}, the course's
shape) and scoring.json, which tells `rec recommend` how to score exactly as the model does.
The network is rebuilt from output/model/config.json alone. Before finishing, the saved
vectors are checked against the model's own predictions on validation pairs.

The other recall channels go in the same unit (rec.rank.channels): EASE's item-item matrix
and PureSVD's item factors (ease.npz), fitted on the training ratings with the λ and the
rank that did best on the tuning slice (scoring.json's "channels" records the choices), so recommend and the rank stage read one
save-features run.
"""

from __future__ import annotations

import numpy as np
import typer

from rec.storage import manifest
from rec.console import log
from rec.results import emit_object
from rec.datasets.contract import VAL, dataset_identity, dataset_paths, load_dataset
from rec.errors import RecError
from rec.stages import get_paths, stage
from rec.stages.options import Device, Format

HELP = "Save every user's and movie's vector (pickles) for recommend, from the trained model."
CHECK_PAIRS = 2000
TOLERANCE = 1e-4


def export(paths, device: str) -> dict:
    from rec.engine.runtime import setup_device
    from rec.twotower import kinds
    from rec.twotower.features import save_features

    device = setup_device(device)
    ds = load_dataset(paths)
    model, config = kinds.load_trained(paths, ds)
    kind = kinds.of_model(model)
    user_vecs, movie_vecs, scoring = kind.saved_vectors(model, ds)
    # the model run they come from: evaluate then reads them instead of the model (no paddle)
    scoring = {**scoring, "dataset_fingerprint": dataset_identity(paths),
               "model_run": config["model_run"]}
    # The saved vectors must reproduce the model's predictions: check on validation pairs.
    vu, vm, _ = ds.part(VAL)
    pick = np.random.default_rng(0).permutation(len(vu))[:CHECK_PAIRS]
    max_diff = kind.vector_mismatch(model, ds, user_vecs, movie_vecs, scoring, vu[pick],
                                    vm[pick])
    if max_diff > TOLERANCE:
        raise RecError(f"saved vectors disagree with the model by {max_diff:.2e}; not saved")
    extra = kind.fold_in_file(model)  # the default model serves new users (fold-in)
    from rec.storage import unit
    from rec.rank.channels import item_channels

    run_id = unit.new_run_id()
    item_file, scoring["channels"] = item_channels(ds, run_id)
    extra.update(item_file)
    written = save_features(paths.features_dir, ds.vocab.user_ids, user_vecs,
                            ds.vocab.movie_ids, movie_vecs, scoring, extra, run_id,
                            tagged=tuple(item_file))
    manifest.record(paths, "save-features", {"device": device},
                    inputs=dataset_paths(paths) + [paths.model.params],
                    outputs=written)
    return {"users": len(user_vecs), "movies": len(movie_vecs), "dim": int(user_vecs.shape[1]),
            "match": scoring["match"], "checked_pairs": int(len(pick)),
            "max_abs_diff": max_diff, "output": str(paths.features_dir)}


@stage(writes=("output",), into=("features_dir",))
def command(
    ctx: typer.Context,
    device: Device = "cpu",
    fmt: Format = "auto",
) -> None:
    summary = export(get_paths(ctx), device)
    log(f"saved {summary['users']:,} user and {summary['movies']:,} movie vectors "
        f"({summary['dim']} components) to {summary['output']}")
    emit_object(summary, fmt)
