"""`rec ctr-train`'s work: the rank stage (`--data movielens`, `--model rank`, the default:
rec.rank.fit, which this calls as it is) or a CTR model (Wide&Deep or DeepFM) beside a
logistic-regression baseline, on MovieLens-as-CTR or a raw Criteo file, through
rec.engine.trainer.fit (a checkpoint each epoch, `--resume`, the best epoch published as
output/ctr/model, sealed: rec.storage.unit). With --data movielens and output/features
present, the run ends with the recall-then-rank comparison (rec.ctr.training).

`p` is the stage's CtrParams (each field one command-line option; `p.check()` refuses a
bad combination once --resume has read the checkpoint's); `resumed(saved)` turns a
checkpoint's saved parameters into the run's (the command line's rule, so the stage's).
The process that writes files records the run in the manifest.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Callable

from rec import __version__
from rec.datasets.contract import dataset_paths
from rec.errors import UsageError
from rec.paths import CATEGORIES, SCORING, Paths
from rec.storage import manifest, records


def train(paths: Paths, p, device: str, resume: bool,
          resumed: Callable[[dict], object]) -> dict:
    """Train (or resume) the rank stage or a CTR model; its metrics (the stage prints them)."""
    if not resume and p.model in (None, "rank") and p.data == "movielens":
        from rec.rank.fit import train_ranker

        p.check()
        inputs = [*dataset_paths(paths), paths.model.params, paths.features_dir / SCORING]
        read_as = manifest.fingerprints(inputs)  # now, not inside publish (Ctrl-C waits)
        return train_ranker(paths, p, device, resume, record=lambda: records.pending(
            paths, "ctr-train", {**asdict(p), "device": device}, inputs=inputs,
            outputs=[paths.ctr.best, paths.ctr.metrics], resolved=p.left_out(),
            read_as=read_as))
    from rec.engine import runtime, trainer
    from rec.ctr import training as ct
    from rec.ctr.sources import make_source
    import paddle

    monitor = trainer.Monitor("auc", bigger_is_better=True, label="val AUC", state_key="best_auc")
    state = trainer.new_state(monitor)
    from rec.rank.training import RANK_CHECKPOINT

    if resume and (paths.ctr.checkpoint / RANK_CHECKPOINT[0]).is_file():
        raise UsageError("the checkpoint is the rank stage's, which trains in seconds and is "
                         "not resumed: run `rec ctr-train --data movielens` without --resume")
    if resume:
        state, p = trainer.read_state(paths.ctr, "rec ctr-train", state, ct.CHECKPOINT_FILES,
                                      resumed)
    p.check()
    job = runtime.start(device)
    vocab = paths.ctr.checkpoint / CATEGORIES if resume and p.categorical == "vocab" else None
    source, data_id, input_files, read_as = make_source(paths, p, vocab)
    if p.val_input:
        source.validation()  # read (and check) the validation file before any training
    runtime.seed_all(p.seed)
    config, model, _, baseline = ct.new_models(source, p.model, p.embedding_size,
                                               p.hidden_sizes(), p.dropout)
    # merged Adam (one kernel for every parameter; equal to float rounding): 2 of the 14.5 ms
    # of an ml-1m Wide&Deep step went to per-parameter update calls
    opt = paddle.optimizer.Adam(learning_rate=p.lr, parameters=model.parameters(),
                                use_multi_tensor=True)
    base_opt = paddle.optimizer.Adam(learning_rate=p.baseline_lr,
                                     parameters=baseline.parameters(), use_multi_tensor=True)
    full_config = {"model": config.to_json(), "features": source.describe(),
                   "train": asdict(p), "device": job.device, "data_fingerprint": data_id,
                   "rec_version": __version__}
    if p.data == "movielens":  # the dataset's own split; the view's slice is its "tuning"
        v = source.evaluated.vocab
        full_config["dataset"] = {"name": v.dataset, "split": source.ds.vocab.split}
    label = v.dataset if p.data == "movielens" else Path(p.input).name
    # what --resume compares: on MovieLens the training data is the tuning view's (the
    # slice chooses the epochs), which a checkpoint of an older rec, trained on every
    # training rating and validated on the evaluation split, was not: it is refused
    trained_on = data_id + "+tuning-view" if p.data == "movielens" else data_id
    spec = trainer.FitSpec(
        run="rec ctr-train", folder=paths.ctr, epochs=p.epochs, patience=p.patience, seed=p.seed,
        monitor=monitor, params=asdict(p), data_id=trained_on, data_name="the training data",
        title=f"rec ctr-train · {label} · {p.model} · {job.device}",
        columns={"train_loss": "train loss", "auc": "val AUC", "logloss": "val log loss",
                 "baseline_auc": "LR AUC", "baseline_logloss": "LR log loss"},
        finite=("logloss",), unit="samples",
        no_samples="no training lines: every line went to validation")
    objective = ct.ctr_objective(source, p.batch_size, model, opt, baseline, base_opt,
                                 full_config, state)

    def summarize(result) -> dict:
        # every metric, the baseline's too, from the epoch whose model was kept
        metrics = {
            "data": p.data, "dataset": label, "model": p.model, "device": job.device,
            **result.summary("auc", "logloss", "baseline_auc", "baseline_logloss"),
            "baseline": "logistic regression over the same features",
            "train_loss": round(result.best["train_loss"], 6),
            "train_samples": result.state["n_train"],
            "val_samples": int(full_config.get("val_samples", 0)), **result.speed()}
        if job.main and p.data == "movielens":
            metrics.update(ct.recall_then_rank(paths, source, p.candidates))
        return metrics

    spec.record = lambda: records.pending(  # with the model (trainer.publish)
        paths, "ctr-train", {**asdict(p), "device": job.device}, inputs=input_files,
        outputs=[paths.ctr.best, paths.ctr.metrics], resolved=p.left_out(), read_as=read_as)
    return trainer.fit(spec, job, objective, state, resume, summarize).metrics
