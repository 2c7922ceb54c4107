"""`rec save-features`'s work: both towers run over every user and movie, the vectors
checked against the model's own predictions on validation pairs (CHECK_PAIRS of them, to
TOLERANCE) before anything is written, the other recall channels fitted (rec.rank.channels:
EASE's and PureSVD's item files, chosen on the tuning slice), and all of it published as one
unit, output/features (rec.twotower.features.save_features, sealed: rec.storage.unit). The
network is rebuilt from output/model/best alone (rec.twotower.kinds.load_trained).
"""

from __future__ import annotations

import numpy as np

from rec.datasets.contract import VAL, dataset_identity, dataset_paths, load_dataset
from rec.errors import RecError
from rec.paths import Paths
from rec.storage import records, unit

CHECK_PAIRS = 2000
TOLERANCE = 1e-4


def save(paths: Paths, device: str) -> dict:
    """Save the features (see the module's docstring); the summary the stage prints."""
    from rec.engine.runtime import setup_device
    from rec.twotower import kinds
    from rec.twotower.features import features_files, save_features

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
    from rec.rank.channels import item_channels

    run_id = unit.new_run_id()
    item_file, scoring["channels"] = item_channels(ds, run_id)
    extra.update(item_file)
    # the manifest entry, sealed in the folder too (rec.storage.records): a kill -9 between
    # the folder's swap and the manifest's write leaves it with the features
    pending = records.pending(paths, "save-features", {"device": device},
                              inputs=dataset_paths(paths) + [paths.model.params],
                              outputs=features_files(paths.features_dir,
                                                     [*extra, records.RECORD]))
    extra[records.RECORD] = pending.data
    save_features(paths.features_dir, ds.vocab.user_ids, user_vecs, ds.vocab.movie_ids,
                  movie_vecs, scoring, extra, run_id, tagged=tuple(item_file))
    pending.commit()
    return {"users": len(user_vecs), "movies": len(movie_vecs), "dim": int(user_vecs.shape[1]),
            "match": scoring["match"], "checked_pairs": int(len(pick)),
            "max_abs_diff": max_diff, "output": str(paths.features_dir)}
