"""The two-tower model kinds by name, the values of `rec train --match` (no paddle to import
this module):

    softmax   the recall-then-rank two-tower, the default (rec.twotower.recall_rank)
    dot       the course's rating model: mean + u.m + biases (rec.twotower.rating)
    cosine    the same towers scored by the course's 5 * cos(u, m) (rec.twotower.rating)

Each is one rec.twotower.kind.Kind, declared in the module of its family. The stages look a
kind up here, by --match (`kind`), by a trained network (`of_model`) or by scoring.json's
"match", and never branch on its name. Adding a kind: its module, and its entry in KINDS.
`load_trained` rebuilds a trained network of any kind from output/model alone.
"""

from __future__ import annotations

from rec.datasets.contract import Dataset, is_dataset
from rec.errors import UsageError
from rec.paths import Paths, read_json, reading
from rec.twotower import rating, recall_rank
from rec.twotower.kind import Kind

KINDS: dict[str, Kind] = {k.name: k for k in (recall_rank.KIND, rating.DOT, rating.COSINE)}
DEFAULT = recall_rank.KIND.name
UNNAMED = rating.DOT.name  # config.json written before the model said its match


def kind(name: str) -> Kind:
    """The kind called `name`; an unknown name is a one-line usage error naming the kinds."""
    found = KINDS.get(name)
    if found is None:
        raise UsageError(f"unknown --match {name!r}: choose {', '.join(KINDS)}")
    return found


def of_model(model) -> Kind:
    """The kind of a network built by one of the kinds."""
    return KINDS[model.config.match]


def match_help(described: bool = True) -> str:
    """--match's help: every kind, with its few words when `described`."""
    named = [f"{k.name} ({k.help})" if described else k.name for k in KINDS.values()]
    return ", ".join(named[:-1]) + " or " + named[-1] + "."


def load_trained(paths: Paths, ds: Dataset | None = None) -> tuple:
    """(network, config.json) of output/model/best: the network of the kind its config
    names, rebuilt from config.json alone, with its best weights, both from one rec train run
    (rec.storage.unit.read; imports paddle), the config with the run's id ("model_run").
    Given `ds`, the network must have been trained on it. An output/model of an older rec (its files beside the checkpoint, no best/) reads
    as missing."""
    from rec.storage import unit

    return unit.read(paths.model.best, "rec train", lambda s: _load_trained(s, paths, ds))


def _load_trained(snapshot, paths: Paths, ds: Dataset | None) -> tuple:
    import io

    from rec.engine.runtime import load_weights  # first: it sets paddle's process up
    from rec.paths import PARAMS

    best = paths.model
    for path in (best.config, best.params):
        if not snapshot.is_file(path.name):
            raise UsageError(f"missing {path}: run `rec train` first")
    config = read_json(best.config, "rec train", keys=("model",), snapshot=snapshot)
    with reading(best.config, "rec train"):
        match = config["model"].get("match", UNNAMED)
        if match not in KINDS:
            raise ValueError(f"unknown match {match!r}")
        found = KINDS[match]
        model = found.saved_network(config["model"])
        # a tower that reads the user's ratings knows no user ids: any number of users
        n_users = (ds.n_users if ds is not None else None) if found.folds_in else \
            model.config.n_users
        trained_on = (config.get("dataset") or {}).get("fingerprint")
    if ds is None:
        pass
    elif (ds.n_users, ds.n_movies) != (n_users, model.config.n_movies) or \
            not (trained_on is None or is_dataset(trained_on, paths)):
        raise UsageError("output/model was trained on another dataset than output/dataset: "
                         "run `rec train` again")
    load_weights(model, io.BytesIO(snapshot.read_bytes(PARAMS)), best.params, "rec train")
    return model, {**config, "model_run": model_run(snapshot)}


def model_run(snapshot) -> str | None:
    """The run id of the rec train run whose output/model/best `snapshot` holds (its
    unit.json; unit.read checks it after the load)."""
    import json

    from rec.storage.unit import UNIT

    try:
        return str(json.loads(snapshot.read_text(UNIT))["run_id"])
    except (OSError, ValueError, TypeError, KeyError):
        return None


def trained_config(paths: Paths) -> dict:
    """output/model/best's config.json with its "model_run", without paddle or the weights
    (checked as a unit all the same)."""
    from rec.storage import unit

    def load(snapshot) -> dict:
        best = paths.model
        if not snapshot.is_file(best.config.name):
            raise UsageError(f"missing {best.config}: run `rec train` first")
        config = read_json(best.config, "rec train", keys=("model",), snapshot=snapshot)
        return {**config, "model_run": model_run(snapshot)}
    return unit.read(paths.model.best, "rec train", load)
