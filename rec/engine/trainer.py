"""One training loop for every objective: `fit` (imports paddle, through rec.engine.runtime).

A stage builds its network(s) and optimizer(s) and says what one epoch of training and one
validation are (an `Objective`); `fit` does the rest, the same way for every stage:

    setup      --resume: refuse other training data, restore every network and optimizer
               from the checkpoint; wrap the networks in paddle.DataParallel when the run
               has several processes; start the live display
    each epoch paddle.seed(seed * 1000 + epoch) (dropout), then
               objective.train_epoch(Epoch) -> ({loss name: sum over this process's
                   samples}, this process's sample count); fit sums both across processes
                   and reports each loss as sum / count
               objective.validate() -> {metric: value}
               the finite-check (train losses and spec.finite metrics): nan or inf stops
                   the run (exit 1) before anything of the epoch is saved
               the improvement test of spec.monitor (bigger or smaller is better, by at
                   least min_delta), patience (stop after `patience` epochs without one)
               rank 0 only: objective.save_best(epoch, folder) when improved (it writes
                   the model's files into `folder`, swapped in whole, with the run's id in
                   run.json, as the run's staging folder, spec.folder.staging.best); the
                   checkpoint (each network's weights and optimizer state,
                   objective.checkpoint_extra's files and state.json, swapped in as one
                   folder)
               a row of the live table (or a log line when stderr is not a terminal)
    the end    `summarize(FitResult)` -> the run's metrics; rank 0 publishes the run's best
               model with them, then history.json (`publish`: only a run that ends
               replaces the previous model and its history)

The loop assumes nothing about how a network is called or what its loss is: train_epoch is
arbitrary code (several networks, several losses, sampled softmax over a catalogue, ...).
Every epoch's shuffle should come from `Epoch.rng()` (seeded by (seed, epoch) alone), so a
resumed run retraces an uninterrupted one; call `Trainable.train_net` (DataParallel-wrapped
when needed) to train, and each process takes its own slice (`Epoch.job.rank` of
`Epoch.job.world`) of every global batch. The model after RecBole's `Trainer.fit` with its
`early_stopping(value, best, cur_step, max_step, bigger)`.

Use (rec/stages/train.py and rec/stages/ctr_train.py are whole examples):

    job = runtime.start(device)                  # rank, processes, device
    state = new_state(monitor)                   # or, with --resume, before any network:
    state, params = read_state(folder, run, state, [(params_file, optimizer_file)], rebuild)
    runtime.seed_all(params.seed)                # then build the networks and optimizers
    result = fit(FitSpec(run, folder, epochs, patience, seed, monitor, params, data_id, ...),
                 job, Objective([Trainable(net, optimizer, params_file, optimizer_file)],
                                train_epoch, validate, save_best),
                 state, resume, summarize=lambda r: {**r.summary("tune_ndcg@10"), **r.speed()})

validate()'s keys name the columns of the table (FitSpec.columns), the monitored metric
(Monitor.key) and the metrics that must be finite (FitSpec.finite). A row of history.json is
{"epoch", *train losses, *validate()'s metrics, "samples_per_s", "epoch_seconds",
"elapsed"}; state.json holds "epoch", "history", the monitor's best (Monitor.state_key),
"best_epoch", "bad_epochs", "params", "n_train" (samples of the last epoch),
"data_fingerprint", "run_id" (drawn by a fresh run: --resume takes only the staged or
published model whose run.json carries it) and whatever the stage adds (new_state's extra keys, Objective.on_epoch).
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from rec.process import interrupts

from rec.storage import unit

from rec.engine import runtime
from rec.storage.atomic import atomic_dir, write_bytes, write_json
from rec.storage.records import RECORD
from rec.console import EpochDisplay, epoch_line, epoch_table, log
from rec.errors import UsageError
from rec.paths import HISTORY, METRICS, RUN, STATE, TrainingFolder
from rec.engine.runtime import Job


@dataclass(frozen=True)
class Monitor:
    """The validation metric that picks the best epoch and drives early stopping."""

    key: str  # in validate()'s dict, e.g. "tune_rmse", "auc", "tune_ndcg@10"
    bigger_is_better: bool
    label: str  # for people, e.g. "tune RMSE"
    state_key: str  # its best value's key in state.json, e.g. "best_rmse"
    min_delta: float = 1e-4  # a change smaller than this is no improvement

    def improves(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        if self.bigger_is_better:
            return value > best + self.min_delta
        return value < best - self.min_delta

    def best(self, values: list[float]) -> float | None:
        return (max if self.bigger_is_better else min)(values, default=None)


@dataclass
class Trainable:
    """A network fit trains, its optimizer, and their files in the checkpoint folder."""

    net: Any  # paddle.nn.Layer
    optimizer: Any
    params_file: str
    optimizer_file: str
    train_net: Any = None  # set by fit: the net, or its paddle.DataParallel wrapper; call it
    #                       in train_epoch (gradients are then averaged across processes)


@dataclass
class Epoch:
    """What train_epoch gets: the epoch's number, this process's place, the live display."""

    number: int
    seed: int
    job: Job
    display: EpochDisplay

    def rng(self, *more: int) -> np.random.Generator:
        """The epoch's shuffle: seeded by (seed, epoch, *more) alone."""
        return np.random.default_rng([self.seed, self.number, *more])

    def started(self, total: int | None) -> None:
        """The epoch's progress bar: `total` batches or samples (None: unknown)."""
        self.display.epoch_started(self.number, total)

    def advance(self, n: int = 1) -> None:
        self.display.advance(n)


@dataclass
class Objective:
    """What a stage plugs into fit (see the module docstring)."""

    parts: list[Trainable]
    train_epoch: Callable[[Epoch], tuple[dict, int]]
    validate: Callable[[], dict]
    save_best: Callable[[int, Path], None]  # rank 0, after an improved epoch: (epoch, folder)
    #                                   write the model's files into folder (runtime.save_model)
    checkpoint_extra: Callable[[Path], None] | None = None  # rank 0: more checkpoint files
    on_epoch: Callable[[dict, dict], None] | None = None  # (row, state), every rank, before
    #                                   the checkpoint: keep the stage's own keys in state


@dataclass
class FitSpec:
    run: str  # the command, named in errors (e.g. "rec train")
    folder: TrainingFolder  # checkpoint/, history.json, metrics.json
    epochs: int  # in total, counting those a resumed run already has
    patience: int
    seed: int
    monitor: Monitor
    params: dict  # the run's parameters, kept in state.json (--resume rebuilds the run)
    data_id: str  # identity of the training data; --resume refuses other data
    data_name: str  # for people, e.g. "output/dataset"
    title: str  # the live table's title
    columns: dict[str, str]  # row key -> column: the losses and metrics shown each epoch
    finite: tuple[str, ...] = ()  # validation metrics that must be finite
    unit: str = "batches"  # what the progress bar counts: batches or samples
    no_samples: str = "no training samples"  # the error when an epoch trained on nothing
    keep_last: bool = False  # every epoch replaces the best (no selection, no early stop)
    resumable: bool = True  # `run --resume` continues a checkpoint (the rank stage: no)
    record: Callable[[], Any] | None = None  # its manifest entry (records.pending): publish


@dataclass
class FitResult:
    spec: FitSpec
    job: Job
    state: dict  # as in the checkpoint's state.json
    history: list[dict]  # one row per epoch: epoch, losses, metrics, samples_per_s, ...
    best: dict  # the row of the best epoch
    metrics: dict = field(default_factory=dict)  # what summarize returned

    def summary(self, *keys: str) -> dict:
        """best_epoch, epochs_run and the best epoch's `keys`, rounded."""
        return {"best_epoch": self.state["best_epoch"], "epochs_run": self.state["epoch"],
                **{k: round(self.best[k], 6) for k in keys}}

    def speed(self) -> dict:
        """samples_per_s (the mean over epochs), seconds (this run's), seed, processes,
        threads (of each process)."""
        return {"samples_per_s": round(float(np.mean([h["samples_per_s"] for h in self.history])), 1),
                "seconds": round(self.history[-1]["elapsed"], 2), "seed": self.spec.seed,
                "processes": self.job.world, "threads": self.job.threads}


def new_state(monitor: Monitor, **extra) -> dict:
    """The state of a run before its first epoch (`extra`: the stage's own keys)."""
    return {"epoch": 0, "history": [], monitor.state_key: None, "best_epoch": None,
            "bad_epochs": 0, **extra}


def read_state(folder: TrainingFolder, run: str, fresh: dict, files: list[tuple[str, str]],
               make_params):
    """(state, params) of the checkpoint --resume continues from, before any network is
    built (the parameters decide its shape). `files`: each network's (params, optimizer)
    file names; `make_params(saved parameters)` rebuilds the run's parameters."""
    names = [name for pair in files for name in pair]
    return runtime.read_checkpoint(folder.checkpoint, run, fresh, names, make_params)


def fit(spec: FitSpec, job: Job, objective: Objective, state: dict, resume: bool,
        summarize: Callable[[FitResult], dict]) -> FitResult:
    """Train `objective` up to spec.epochs epochs in total; return the FitResult.

    spec       what the run is (FitSpec): its folder, epochs, patience, seed, monitor, ...
    job        runtime.start(device)'s: rank 0 alone writes files and talks
    objective  the networks (Trainable: net, optimizer, their checkpoint file names) and
               train_epoch(Epoch) -> ({loss: sum over this process's samples}, samples),
               validate() -> {metric: value}, save_best(epoch, folder) (rank 0, after an
               improved epoch), optionally checkpoint_extra(folder) and on_epoch(row, state)
    state      new_state(...), or read_state(...)'s with `resume`; updated in place and
               written as the checkpoint's state.json after every epoch
    resume     first restore the networks and optimizers from spec.folder.checkpoint (a
               UsageError, exit 2, when the training data changed: spec.data_id)
    summarize  FitResult -> the run's metrics (every rank; rank 0 publishes them)

    An epoch whose losses or spec.finite metrics are nan or inf stops the run (RecError,
    exit 1) before anything of it is saved. The order of things in an epoch is in the module
    docstring."""
    import paddle

    monitor, parts = spec.monitor, objective.parts
    if resume and spec.epochs <= state["epoch"]:
        raise UsageError(f"nothing to train: the checkpoint is at epoch {state['epoch']} and "
                         f"--epochs is {spec.epochs}; give --epochs above {state['epoch']}")
    if resume:
        _check_own_model(spec, state)
        _restore(spec, parts, state)
    else:  # the earlier run's staged best stays (and it resumable) until this run stages its own
        state["run_id"] = uuid.uuid4().hex
    for part in parts:
        part.train_net = paddle.DataParallel(part.net) if job.world > 1 else part.net
    history = state["history"]
    display = EpochDisplay(spec.title, history,
                           lambda rows, title: epoch_table(rows, title, spec.columns, monitor),
                           unit=spec.unit)
    t_start = time.perf_counter()
    checkpointed = 0  # the last epoch this run wrote a checkpoint of
    try:
        for number in range(state["epoch"] + 1, spec.epochs + 1):
            if state["bad_epochs"] >= spec.patience:
                break
            t0 = time.perf_counter()
            paddle.seed(spec.seed * 1000 + number)  # dropout masks depend on (seed, epoch)
            for part in parts:
                part.net.train()
            sums, n = objective.train_epoch(Epoch(number, spec.seed, job, display))
            n = int(runtime.sum_across_ranks(n, job.world))
            losses = {k: runtime.sum_across_ranks(v, job.world) / max(n, 1) for k, v in sums.items()}
            if n == 0:
                raise UsageError(spec.no_samples)
            train_seconds = time.perf_counter() - t0
            metrics = objective.validate()
            runtime.check_finite(number, **losses, **{
                (k if k.startswith("val") else "val_" + k): metrics[k] for k in spec.finite})
            row = {"epoch": number, **losses, **metrics, "samples_per_s": n / train_seconds,
                   "epoch_seconds": time.perf_counter() - t0,
                   "elapsed": time.perf_counter() - t_start}
            history.append(row)
            value = metrics[monitor.key]
            improved = spec.keep_last or monitor.improves(value, state[monitor.state_key])
            if improved:
                state.update({monitor.state_key: value, "best_epoch": number, "bad_epochs": 0})
            else:
                state["bad_epochs"] += 1
            state.update(epoch=number, history=history, params=spec.params, n_train=n,
                         data_fingerprint=spec.data_id)
            if objective.on_epoch is not None:
                objective.on_epoch(row, state)
            if job.main:
                if improved:
                    with atomic_dir(spec.folder.staging.best) as tmp:
                        objective.save_best(number, tmp)
                        write_json(tmp / RUN, {"run_id": state.get("run_id")})
                _checkpoint(spec, objective, state)
                checkpointed = number
            if not display.update(history):
                log(epoch_line(row, spec.columns, improved))
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: the stage's error line says how on
        if checkpointed and spec.resumable:
            e.resume_hint = f"`{spec.run} --resume` continues after epoch {checkpointed}"
        raise
    finally:
        display.stop()
    if state["bad_epochs"] >= spec.patience and state["epoch"] < spec.epochs:
        log(f"early stop: no improvement for {spec.patience} epochs")
    if not history:
        raise UsageError("nothing to train: the checkpoint already covers --epochs")
    best = next(h for h in history if h["epoch"] == state["best_epoch"])
    result = FitResult(spec, job, state, history, best)
    result.metrics = summarize(result)  # of the run's best model, still in folder.staging
    if job.main:
        publish(spec.folder, result.metrics, history, spec.record)
    return result


def _restore(spec: FitSpec, parts: list[Trainable], state: dict) -> None:
    if state["data_fingerprint"] != spec.data_id:
        raise UsageError(f"{spec.data_name} changed since the checkpoint was written: "
                         "train from scratch (without --resume)")
    for part in parts:
        runtime.restore(spec.folder.checkpoint, spec.run, part.net, part.optimizer,
                        part.params_file, part.optimizer_file)
    log(f"resuming after epoch {state['epoch']} (best {spec.monitor.label} "
        f"{state[spec.monitor.state_key]:.4f} at epoch {state['best_epoch']})")


def saved_by(model_folder: Path) -> str | None:
    """The run id in a saved model's RUN file (None: none, or unreadable)."""
    try:
        return json.loads((model_folder / RUN).read_text()).get("run_id")
    except (OSError, ValueError, AttributeError):
        return None


def _check_own_model(spec: FitSpec, state: dict) -> None:
    """--resume continues the checkpoint's run only with that run's own best model at hand:
    staged (best-of-run), or published by it before. A fresh run keeps the earlier run's
    staged model (and the earlier run resumable) until it stages its own first model; after
    that, a kill before its own first checkpoint leaves the earlier run's checkpoint beside
    this run's model, and continuing the earlier run would publish this one's model with the
    earlier run's metrics. The RUN file beside every saved model tells them apart. (A
    checkpoint without a run id is an older rec's: its staged or published model is taken.)"""
    run_id = state.get("run_id")
    staged, published = spec.folder.staging.best, spec.folder.best
    if staged.is_dir():
        if run_id is None or saved_by(staged) == run_id:
            return
        raise UsageError(f"nothing to resume: the checkpoint's run was replaced by a later "
                         f"run stopped before its first checkpoint; run `{spec.run}` without "
                         "--resume")
    if published.is_dir() and (run_id is None or saved_by(published) == run_id):
        return
    raise UsageError(f"nothing to resume: the checkpoint's best model is not in "
                     f"{spec.folder.staging.best} or {published} (another run's, or an older "
                     f"rec's layout); run `{spec.run}` without --resume")


def publish(folder: TrainingFolder, metrics: dict, history: list[dict],
            record: Callable[[], Any] | None = None) -> None:
    """Put the run's best model (folder.staging.best, where fit saves it) with the run's
    metrics inside in place of the previous one, once the run has ended: one folder, sealed
    and swapped in whole (rec.storage.unit.sealed_dir), so a reader finds the old model with
    its metrics or the new one with its, and a run stopped midway (a diverged epoch, a kill
    before this) leaves the previous one as it was. Then the run's history.json (written
    here alone, so that a stopped run leaves the published model's; the model holds a copy,
    which the next writing stage puts back where a kill -9 came between the two:
    rec.storage.recovery.restore_histories) and `record`'s entry in the manifest (sealed in
    the model too, for a kill -9 before it: rec.storage.records). Ctrl-C and SIGTERM wait
    for all three: one stopping between them left the new model beside the old history and
    the old run's record. A --resume
    run that found nothing better than the model it published before publishes that one
    again, with the run's new metrics."""
    staged = folder.staging.best
    source = staged if staged.is_dir() else folder.best
    done = False
    try:
        with interrupts.deferred():
            pending = record() if record is not None else None
            with unit.sealed_dir(folder.best) as tmp:
                for path in sorted(source.iterdir()):
                    if path.is_file() and path.name not in (METRICS, HISTORY, RECORD,
                                                            unit.UNIT):
                        shutil.copyfile(path, tmp / path.name)
                write_json(tmp / METRICS, metrics)
                # the model's own copies of its run's history and record: a kill -9 after
                # the swap left the previous run's beside the new model, which the next
                # writing stage now puts right from these (rec.storage.recovery.recover)
                write_json(tmp / HISTORY, history)
                if pending is not None:
                    write_bytes(tmp / RECORD, pending.data)
            write_json(folder.history, history)
            if pending is not None:
                pending.commit()
            shutil.rmtree(staged, ignore_errors=True)
            done = True
    except KeyboardInterrupt as e:  # waited for the end of the block, which got there
        if done:
            e.resume_hint = "the run had ended: its model, history and record are in place"
        raise


def _checkpoint(spec: FitSpec, objective: Objective, state: dict) -> None:
    """Weights, optimizer states, extra files and state.json, swapped in together."""
    with atomic_dir(spec.folder.checkpoint) as tmp:
        for part in objective.parts:
            runtime.save_weights(tmp, part.net, part.optimizer, part.params_file,
                                 part.optimizer_file)
        if objective.checkpoint_extra is not None:
            objective.checkpoint_extra(tmp)
        write_json(tmp / STATE, state)
