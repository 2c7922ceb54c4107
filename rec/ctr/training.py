"""CTR training glue (imports paddle): the networks built for a data source, batches as
tensors, predictions, the checked numpy export, the recall-then-rank comparison, and the
objective `rec ctr-train` gives rec.engine.trainer.fit.

Only `rec ctr-train` / `rec ctr-predict` import this module, inside their commands.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rec.ctr.sources import Arrays
from rec.datasets import criteo
from rec.errors import RecError, UsageError
from rec.metrics import auc, logloss
from rec.paths import USER_VECTORS, WEIGHTS, optimizer_file, params_file, read_json, reading
from rec.engine.runtime import load_weights, save_model  # first: it quiets paddle's import-time warnings
from rec.engine.trainer import Epoch, Objective, Trainable

import paddle  # noqa: E402

from rec.models.ctr import CtrConfig, build  # noqa: E402

EVAL_BATCH = 32768
CHECK_ROWS = 2000  # validation rows on which weights.npz must give the model's probabilities
TOLERANCE = 1e-3  # float32: ~1e-6 on a CPU; a GPU's tf32 matrix units differ by a few 1e-4
CHECKPOINT_FILES = [(params_file(name), optimizer_file(name)) for name in ("model", "baseline")]


def tensors(inputs: dict) -> dict:
    return {k: paddle.to_tensor(v) for k, v in inputs.items()}


def recall_then_rank(paths, source, candidates: int) -> dict:
    """HR@10 / NDCG@10 of recall alone and recall + rank (the run's best model, through the
    numpy forward pass); {} without output/features."""
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
    # the run's best model: still in best-of-run/ (published after the metrics are known)
    best = paths.ctr.staging if paths.ctr.staging.config.is_file() else paths.ctr
    config = read_json(best.config, "rec ctr-train", ("model",))
    net = NumpyCtr.load(best.weights, config["model"])
    # a report on the evaluation split (nothing is chosen on it), as `rec evaluate`'s
    result = recall_rerank_metrics(source.evaluated, features, net, source.fields, candidates)
    if result is None:
        warn("output/features does not match output/dataset: recall-then-rank comparison "
             "skipped (run `rec save-features` again)")
        return {}
    log(f"recall then rank ({result['ranked_users']:,} evaluation users, top {candidates} "
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


def export_npz(model, path: Path, rows: Arrays) -> float:
    """The weights as plain numpy arrays (names as in the state_dict), atomically, once the
    numpy forward pass (rec.ctr.forward) gives the model's click probabilities on `rows`
    (CHECK_ROWS of them, drawn with a fixed seed); otherwise an error (exit 1) and nothing
    is written. Returns the largest difference found."""
    from rec.storage.atomic import atomic_path
    from rec.ctr.forward import NumpyCtr

    arrays = {k: v.numpy() for k, v in model.state_dict().items()}
    sample = rows.take(np.random.default_rng(0).permutation(len(rows))[:CHECK_ROWS])
    from_numpy = NumpyCtr(model.config.to_json(), arrays).probabilities(**sample.inputs)
    diff = float(np.abs(from_numpy - predict(model, sample)).max()) if len(sample) else 0.0
    if not diff <= TOLERANCE:
        raise RecError(f"the numpy export of the model ({path.name}) disagrees with it by "
                       f"{diff:.2e} on validation rows; not saved")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return diff


def load_model(paths):
    """Rebuild the best model of output/ctr/model from its config.json alone; also return the
    config and, for Criteo, the transform that turns raw lines into its inputs. Every file
    comes from the same ctr-train run (rec.storage.unit.read: readers take no lock)."""
    from rec.storage import unit

    return unit.read(paths.ctr.best, "rec ctr-train", lambda snapshot: _load_model(snapshot, paths))


def _load_model(snapshot, paths):
    import io

    best = paths.ctr
    for path in (best.config, best.params):
        if not snapshot.is_file(path.name):
            raise UsageError(f"missing {path}: run `rec ctr-train` first")
    config = read_json(best.config, "rec ctr-train", keys=("model", "features"),
                       snapshot=snapshot)
    if config["features"].get("kind") == "rank":
        raise UsageError(f"{best.best} holds the rank stage (it ranks recall candidates for "
                         "`rec recommend`), not a CTR model: run `rec ctr-train --data "
                         "movielens --model wide_deep` (or --input FILE for Criteo) first")
    with reading(best.config, "rec ctr-train"):
        model = build(CtrConfig.from_json(config["model"]))
    load_weights(model, io.BytesIO(snapshot.read_bytes(best.params.name)), best.params,
                 "rec ctr-train")
    transform = None
    with reading(best.config, "rec ctr-train"):
        features = config["features"]
        if features["kind"] == "criteo":
            t = features["transform"]
            transform = criteo.CriteoTransform(t["mode"], t["hash_size"], t["min_count"])
            if t["mode"] == "vocab":
                if not snapshot.is_file(best.categories.name):
                    raise UsageError(f"missing {best.categories}: run `rec ctr-train` first")
                with reading(best.categories, "rec ctr-train"):
                    transform.vocab = criteo.CategoryVocab.load(
                        io.BytesIO(snapshot.read_bytes(best.categories.name)))
    return model, config, transform


# --- the objective, for rec.engine.trainer.fit -----------------------------------------------------


def ctr_objective(source, batch_size: int, model, opt, baseline, base_opt,
                  config: dict, state: dict) -> Objective:
    """The model and its logistic-regression baseline trained on the same batches (binary
    cross-entropy on the click label), both validated on AUC and log loss. The best model's
    files: weights and config.json (runtime.save_model), weights.npz (MovieLens, checked
    against the model) and the Criteo vocabulary (vocab transform). `state` is the run's state (its
    n_train sizes the progress bar of a Criteo file on resume)."""
    parts = [Trainable(net, optim, *files) for (net, optim), files in
             zip([(model, opt), (baseline, base_opt)], CHECKPOINT_FILES)]
    validated = {}

    def train_epoch(epoch: Epoch) -> tuple[dict, int]:
        # Data parallel: each rank takes its slice of every batch; gradients are averaged.
        rank, world = epoch.job.rank, epoch.job.world
        train_model, train_base = parts[0].train_net, parts[1].train_net
        loss_sum, n = 0.0, 0
        epoch.started(source.n_train or state.get("n_train"))
        # parts of whole batches (the batches are as if the epoch were one part)
        for part in source.train_parts(epoch.rng, batch_size):
            for i in range(0, len(part), batch_size):
                if len(part) - i < world:  # every process needs a sample
                    break
                batch = part.take(slice(i + rank, i + batch_size, world))
                x = tensors(batch.inputs)
                y = paddle.to_tensor(batch.labels)
                loss = bce(train_model(**x), y)
                loss.backward()
                opt.step()
                opt.clear_grad()
                base_loss = bce(train_base(x["ids"], x.get("weights"), x.get("dense")), y)
                base_loss.backward()
                base_opt.step()
                base_opt.clear_grad()
                loss_sum += float(loss) * len(batch)
                n += len(batch)
                epoch.advance(len(batch))
        return {"train_loss": loss_sum}, n

    def validate() -> dict:
        val = source.validation()
        validated["samples"] = len(val)
        auc_, ll = scores(val.labels, predict(model, val))
        b_auc, b_ll = scores(val.labels, predict(baseline, val, baseline=True))
        return {"auc": auc_, "logloss": ll, "baseline_auc": b_auc, "baseline_logloss": b_ll}

    def save_best(epoch: int, folder: Path) -> None:
        config.update(best_epoch=epoch, val_samples=validated["samples"])
        save_model(folder, model, config)
        if source.name == "movielens":
            export_npz(model, folder / WEIGHTS, source.validation())
        source.save_vocabulary(folder)

    return Objective(parts, train_epoch, validate, save_best, source.save_vocabulary)
