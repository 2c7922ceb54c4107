"""`rec train`'s work: the two-tower fitted on the saved train split, through
rec.engine.trainer.fit (the one training loop), with the model kind's objective.

`train(paths, params, ...)` reads output/dataset as the tuning view (the evaluation split is
never read), resolves the kind's auto options, builds its network and optimizer, and runs
the fit: a checkpoint each epoch (`--resume` continues from it), the best (or last) epoch
published as output/model/best, sealed (rec.storage.unit). The process that writes files
records the run in the manifest. `params` is the stage's TrainParams (each field one
command-line option); `resumed(saved)` turns a checkpoint's saved parameters into the
run's, refusing options given with another value (the command line's rule, so the stage's).
"""

from __future__ import annotations

from typing import Callable

from rec import __version__
from rec.datasets.contract import dataset_identity, dataset_paths, load_dataset
from rec.paths import OPTIMIZER, PARAMS, Paths
from rec.storage import manifest, records
from rec.twotower import kinds


def train(paths: Paths, params, device: str, resume: bool, threads: int | None,
          resumed: Callable[[dict], object]) -> dict:
    """Train (or resume) the two-tower model; its metrics (the stage prints them)."""
    from rec.engine import runtime, trainer
    from rec.datasets.tuning import tuning_view

    job = runtime.start(device, threads)
    # the evaluation split is never read: the tuning view holds the training ratings only
    ds = tuning_view(load_dataset(paths, mmap=True))
    (tu, _, tr), _ = ds.train_val()
    n_train, train_mean = len(tu), float(tr.mean())
    del tu, tr
    if resume:
        fresh = {"epoch": 0, "history": [], "best_epoch": None, "bad_epochs": 0}
        state, params = trainer.read_state(paths.model, "rec train", fresh, [(PARAMS, OPTIMIZER)],
                                           resumed)
    kind = kinds.kind(params.match)
    kind.resolve_auto(params, n_train, ds.n_users, ds.n_movies)
    monitor = trainer.Monitor(*kind.monitor)
    if not resume:
        state = trainer.new_state(monitor)
    state.setdefault(monitor.state_key, None)
    config = kind.model_config(ds, train_mean, params)
    runtime.seed_all(params.seed)
    net = kind.network(config)
    optimizer = kind.optimizer(net, config, params.lr, params.weight_decay)
    data_id = dataset_identity(paths)
    state["config"] = full_config = {
        "model": config.to_json(), "train": params.__dict__, "device": job.device,
        "processes": job.world,
        "dataset": {"name": ds.vocab.dataset, "split": ds.vocab.split, "fingerprint": data_id},
        "selection": "epochs and early stopping on the tuning slice (dataset.split.tuning) "
                     "carved from the training ratings; no refit",
        "rec_version": __version__}
    spec = trainer.FitSpec(
        run="rec train", folder=paths.model, epochs=params.epochs, patience=params.patience,
        seed=params.seed, monitor=monitor, params=params.__dict__, data_id=data_id,
        data_name="output/dataset",
        title=f"rec train · {ds.vocab.dataset} · {params.match} · {job.device}"
              + (f" × {job.world} processes" if job.world > 1 else ""),
        columns=kind.columns, finite=kind.finite, keep_last=params.select == "last")
    objective = kind.objective(net, optimizer, ds, params.batch_size, full_config)

    def summarize(result) -> dict:
        return {"dataset": ds.vocab.dataset, "match": params.match, "device": job.device,
                **result.summary(*kind.keys), **result.speed()}

    # the manifest entry goes in with the model (trainer.publish: signals wait for both)
    inputs = dataset_paths(paths)
    read_as = manifest.fingerprints(inputs)  # now: Ctrl-C waits for publish's record
    spec.record = lambda: records.pending(
        paths, "train", {**params.__dict__, "device": job.device}, inputs=inputs,
        outputs=[paths.model.best, paths.model.history],  # every file
        resolved=auto_values(kind, params, n_train, ds.n_users, ds.n_movies), read_as=read_as)
    return trainer.fit(spec, job, objective, state, resume, summarize).metrics


def auto_values(kind, params, n_train: int, n_users: int, n_movies: int) -> dict:
    """What the options left at auto (0) stand for with this --match and dataset: the
    manifest's defaults, so that `rec status` shows only what a run changed (a --resume
    run's options are the checkpoint's, and may differ from them)."""
    left_out = type(params)(match=params.match)
    picked = type(params)(match=params.match)
    kind.resolve_auto(picked, n_train, n_users, n_movies)
    return {k: v for k, v in vars(picked).items() if v != getattr(left_out, k)}
