"""CTR training glue (imports paddle): the networks built for a data source, batches as
tensors, predictions, the numpy export and the recall-then-rank comparison.

Only `rec ctr-train` / `rec ctr-predict` import this module, inside their commands.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from rec.ctr.sources import Arrays
from rec.datasets import criteo
from rec.errors import RecError
from rec.metrics import auc, logloss
from rec.paths import USER_VECTORS, read_json, reading, require

warnings.filterwarnings("ignore", message=".*ccache.*")
import paddle  # noqa: E402

from rec.models.ctr import CtrConfig, build  # noqa: E402

EVAL_BATCH = 32768


def tensors(inputs: dict) -> dict:
    return {k: paddle.to_tensor(v) for k, v in inputs.items()}


def recall_then_rank(paths, source, candidates: int) -> dict:
    """HR@10 / NDCG@10 of recall alone and recall + rank (the saved best model, through the
    numpy forward pass `rec recommend --rerank` uses); {} without output/features."""
    from rec.console import log, warn
    from rec.ctr.forward import NumpyCtr
    from rec.ctr.rerank import recall_rerank_metrics
    from rec.twotower.features import load_features

    if not (paths.features_dir / USER_VECTORS).exists():
        log("no output/features: recall-then-rank comparison skipped "
            "(run `rec save-features` first to get it)")
        return {}
    try:
        features = load_features(paths.features_dir)
    except RecError as e:
        warn(f"recall-then-rank comparison skipped: {e}")
        return {}
    config = read_json(paths.ctr.config, "rec ctr-train", ("model",))
    net = NumpyCtr.load(paths.ctr.weights, config["model"])
    result = recall_rerank_metrics(source.ds, features, net, source.fields, candidates)
    if result is None:
        warn("output/features does not match output/dataset: recall-then-rank comparison "
             "skipped (run `rec save-features` again)")
        return {}
    log(f"recall then rank ({result['ranked_users']:,} validation users, top {candidates} "
        f"candidates): HR@10 {result['recall_hr@10']:.4f} -> {result['rerank_hr@10']:.4f}, "
        f"NDCG@10 {result['recall_ndcg@10']:.4f} -> {result['rerank_ndcg@10']:.4f}")
    return result


# --- models ---------------------------------------------------------------------------------


def new_models(source, model: str, emb_dim: int, hidden: tuple, dropout: float):
    """The model and its logistic-regression baseline, over the same inputs."""
    shape = source.model_shape()
    config = CtrConfig(model=model, emb_dim=emb_dim, hidden=tuple(hidden), dropout=dropout,
                       **shape)
    baseline = CtrConfig(model="lr", emb_dim=emb_dim, hidden=tuple(hidden), dropout=0.0,
                         **{**shape, "n_cross": 0})
    return config, build(config), baseline, build(baseline)


def bce(logits, labels):
    return paddle.nn.functional.binary_cross_entropy_with_logits(logits, labels)


def predict(model, arrays: Arrays, batch: int = EVAL_BATCH, baseline: bool = False) -> np.ndarray:
    """Click probabilities, in order."""
    model.eval()
    out = []
    keys = ["ids", "weights", "dense"] if baseline else None
    with paddle.no_grad():
        for i in range(0, len(arrays), batch):
            inputs = {k: v[i: i + batch] for k, v in arrays.inputs.items()
                      if keys is None or k in keys}
            out.append(paddle.nn.functional.sigmoid(model(**tensors(inputs))).numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def scores(labels: np.ndarray, probs: np.ndarray) -> tuple[float, float]:
    return auc(labels, probs), logloss(labels, probs)


def export_npz(model, path: Path) -> None:
    """The weights as plain numpy arrays (names as in the state_dict), atomically."""
    from rec.atomic import atomic_path

    arrays = {k: v.numpy() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def load_model(paths):
    """Rebuild the best model of output/ctr/model from its config.json alone; also return the
    config and, for Criteo, the transform that turns raw lines into its inputs."""
    from rec.runtime import load_weights

    best = paths.ctr
    require([best.config, best.params], "rec ctr-train")
    config = read_json(best.config, "rec ctr-train", keys=("model", "features"))
    with reading(best.config, "rec ctr-train"):
        model = build(CtrConfig.from_json(config["model"]))
    load_weights(model, best.params)
    transform = None
    with reading(best.config, "rec ctr-train"):
        features = config["features"]
        if features["kind"] == "criteo":
            t = features["transform"]
            transform = criteo.CriteoTransform(t["mode"], t["hash_size"], t["min_count"])
            if t["mode"] == "vocab":
                require([best.categories], "rec ctr-train")
                with reading(best.categories, "rec ctr-train"):
                    transform.vocab = criteo.CategoryVocab.load(best.categories)
    return model, config, transform
