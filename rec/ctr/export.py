"""The CTR model as a servable network (imports paddle): its inputs are its fields (the
slots' ids and weights, dense features, cross ids; never the label), its output the click
probability, verified on real rows: MovieLens validation pairs, or the first lines of the
Criteo file it was trained on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rec.errors import UsageError
from rec.engine.inference import Network

import paddle  # noqa: E402

CHECK_ROWS = 256
ORDER = ("ids", "weights", "dense", "cross", "cross_weights")  # the model's forward order


class _Probability(paddle.nn.Layer):
    """The click probability, sigmoid(logit). paddle.jit needs a forward with named
    arguments, one per input, so each input set the data sources give has its layer."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def probability(self, **inputs):
        return paddle.nn.functional.sigmoid(self.model(**inputs))


class MovieLensProbability(_Probability):
    def forward(self, ids, weights):
        return self.probability(ids=ids, weights=weights)


class CrossesProbability(_Probability):
    def forward(self, ids, weights, cross, cross_weights):
        return self.probability(ids=ids, weights=weights, cross=cross,
                                cross_weights=cross_weights)


class CriteoProbability(_Probability):
    def forward(self, ids, dense):
        return self.probability(ids=ids, dense=dense)


LAYERS = {("ids", "weights"): MovieLensProbability, ("ids", "dense"): CriteoProbability,
          ("ids", "weights", "cross", "cross_weights"): CrossesProbability}


def real_rows(paths, config: dict, transform) -> dict:
    """Model inputs ({name: array}) of up to CHECK_ROWS real samples."""
    features = config["features"]
    if features["kind"] == "criteo":
        from rec.datasets import criteo

        path = Path(features.get("val_input") or features["input"])
        if not path.is_file():
            raise UsageError(f"the CTR model's Criteo file {path} is gone: the export is "
                             "verified on its lines")
        chunk = next(criteo.read_chunks(path, chunk_bytes=1 << 20), None)
        if chunk is None:
            raise UsageError(f"{path} has no lines to verify the export on")
        inputs = {"ids": transform.ids(chunk), "dense": transform.dense(chunk)}
        return {k: v[:CHECK_ROWS] for k, v in inputs.items()}
    from rec.ctr.fields import MovieLensFields
    from rec.datasets.contract import VAL, is_dataset, load_dataset

    ds = load_dataset(paths)
    if not is_dataset(config.get("data_fingerprint"), paths):
        raise UsageError("output/ctr was trained on another output/dataset: "
                         "run `rec ctr-train --data movielens` again")
    users, movies, _ = ds.part(VAL)
    pick = np.sort(np.random.default_rng(0).permutation(len(users))[:CHECK_ROWS])
    fields = MovieLensFields.from_dataset(ds, features.get("crosses", False))
    return fields.inputs(users[pick], movies[pick])


def network(paths) -> Network:
    from rec.ctr import training as ct
    from rec.ctr.sources import Arrays

    model, config, transform = ct.load_model(paths)
    model.eval()
    inputs = real_rows(paths, config, transform)
    names = [n for n in ORDER if inputs.get(n) is not None]
    rows = [np.ascontiguousarray(inputs[n]) for n in names]
    specs = [(n, str(r.dtype), [None, *r.shape[1:]]) for n, r in zip(names, rows)]
    expected = ct.predict(model, Arrays({n: inputs[n] for n in names}, None))
    about = {"model": config["model"]["model"], "features": config["features"],
             "how_to_build_inputs": "as rec.ctr.fields.MovieLensFields.inputs (MovieLens) or "
             "rec.datasets.criteo.CriteoTransform ids/dense (Criteo); labels are not inputs"}
    if tuple(names) not in LAYERS:
        raise UsageError(f"cannot export a CTR model with inputs {names}")
    return Network("ctr", LAYERS[tuple(names)](model), specs, "click probability",
                   rows, {"the trained model": expected}, about)
