"""A full disk (ENOSPC) or a file system gone read-only (EROFS) at each write of train,
ctr-train, evaluate, download and export (test_faults.py does save-features and preprocess).

Every write of a stage publishes something with os.replace (a file) or os.rename (a folder):
the n-th of them fails. Each stage's last n + 1 succeeds, so the list of writes is complete.
The fast suite fails the writes at the boundaries (the first, the one that publishes the
model, past the last); `pytest -m slow` every one of them.
After a fault: one error line naming the path (exit 1); every artifact is the old one or the
new one, whole (a model's folder holds the files its unit.json names, rec.storage.unit);
no temporary files are left; and the next run of the stage works.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import pytest

from rec.storage.atomic import PROBE

from conftest import (SMALL, SMALL_WORLD, copy_world, no_leftovers, one_line_error, rec,
                      run_stages, snapshot)

REASON = {errno.ENOSPC: "No space left on device", errno.EROFS: "Read-only file system"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """Every artifact once: dataset, model, features, CTR model, evaluation, export."""
    return run_stages(tmp_path_factory.mktemp("injected"), *SMALL_WORLD, ["ctr-train", "--model", "wide_deep", "--epochs", "1"], ["evaluate"], ["export"])


@pytest.fixture
def world(trained, tmp_path) -> Path:
    return copy_world(trained, tmp_path)


def sweep(writes: int, fast: set[int]) -> list:
    """n = 1 .. writes + 1; those not in `fast` (the boundaries) run with `-m slow` only."""
    return [n if n in fast else pytest.param(n, marks=pytest.mark.slow)
            for n in range(1, writes + 2)]


def fail_write(monkeypatch, n: int, error: int) -> list:
    """The n-th publication (os.replace or os.rename; the writability probe is not one)
    fails with `error`. Returns the publications seen."""
    seen = []
    for name in ("replace", "rename"):
        real = getattr(os, name)

        def faulty(src, dst, *args, real=real, **kwargs):
            if Path(dst).name != PROBE:
                seen.append(str(dst))
                if len(seen) == n:
                    raise OSError(error, os.strerror(error), str(dst))
            return real(src, dst, *args, **kwargs)

        monkeypatch.setattr(os, name, faulty)
    return seen


def run_with_fault(world: Path, monkeypatch, stage: list[str], n: int, writes: int,
                   error: int = errno.ENOSPC):
    """Run `stage` with its n-th write failing; n = writes + 1 must succeed."""
    seen = fail_write(monkeypatch, n, error)
    result = rec(world, *stage)
    monkeypatch.undo()
    if n > writes:
        assert result.exit_code == 0 and len(seen) == writes, (result.stderr, seen)
        return None
    message = one_line_error(result, 1)
    assert f"cannot write {world}" in message and REASON[error] in message, message
    no_leftovers(world / "output")
    return message


def model_is_whole(folder: Path) -> dict[str, bytes]:
    """The model's files (weights, config, metrics, ...), after checking that its unit.json
    names every one of them as it is."""
    files = snapshot(folder)
    sealed = json.loads(files.pop("unit.json"))["sha256"]
    assert {name: hashlib.sha256(data).hexdigest() for name, data in files.items()} == sealed
    return files


# best-of-run (config.json, run.json, 2 renames), checkpoint (state.json, 3 renames), the
# model folder: metrics.json, its copy of history.json, its record, unit.json, 3 renames
# (all old until the last), then history and manifest
TRAIN_WRITES = 17
TRAIN_PUBLISHED = 15


@pytest.mark.parametrize("n", sweep(TRAIN_WRITES, {1, TRAIN_PUBLISHED, TRAIN_WRITES + 1}))
def test_full_disk_at_each_write_of_train(world, monkeypatch, n):
    best = world / "output" / "model" / "best"
    old = model_is_whole(best)
    stage = ["train", "--epochs", "1", "--seed", "7"]
    if run_with_fault(world, monkeypatch, stage, n, TRAIN_WRITES) is None:
        return
    # the model, its config and its metrics change together
    assert (model_is_whole(best) == old) == (n <= TRAIN_PUBLISHED)
    assert rec(world, *stage).exit_code == 0  # the next run works
    assert model_is_whole(best)["model.pdparams"] != old["model.pdparams"]


@pytest.mark.parametrize("n", [1, pytest.param(4, marks=pytest.mark.slow)])
def test_full_disk_as_a_fresh_train_stages_its_first_model_keeps_the_earlier_run(
        world, monkeypatch, n):
    """The fresh run cannot stage its first model (best-of-run's writes 1-4): the earlier
    run's checkpoint is as it was, and --resume continues that run."""
    model = world / "output" / "model"
    checkpoint, history = snapshot(model / "checkpoint"), (model / "history.json").read_bytes()
    epoch = json.loads(checkpoint["state.json"])["epoch"]
    run_with_fault(world, monkeypatch, ["train", "--epochs", "1", "--seed", "7"], n,
                   TRAIN_WRITES)
    assert snapshot(model / "checkpoint") == checkpoint
    assert (model / "history.json").read_bytes() == history
    result = rec(world, "train", "--resume", "--epochs", str(epoch + 1))
    assert result.exit_code == 0, result.stderr
    assert f"resuming after epoch {epoch}" in result.stderr


def test_a_run_stopped_between_its_model_and_its_history_has_them_put_together(
        world, monkeypatch):
    """The write of history.json right after the model's swap fails, where a kill -9 could
    stop a run too: the new model sits beside the previous run's history until the next
    writing stage puts back the model's own copy."""
    model = world / "output" / "model"
    previous = (model / "history.json").read_bytes()
    run_with_fault(world, monkeypatch, ["train", "--epochs", "1", "--seed", "7"],
                   TRAIN_PUBLISHED + 1, TRAIN_WRITES)
    published = (model / "best" / "history.json").read_bytes()
    assert len(json.loads(published)) == 1 and published != previous
    assert (model / "history.json").read_bytes() == previous
    result = rec(world, "evaluate")
    assert result.exit_code == 0, result.stderr
    assert "history.json did not match the published model's history" in result.stderr
    assert (model / "history.json").read_bytes() == published
    assert "put back" not in rec(world, "evaluate").stderr  # once
    (model / "history.json").unlink()  # removed by hand: put back too, by any writing stage
    assert "history.json was missing" in rec(world, "export").stderr
    assert (model / "history.json").read_bytes() == published
    (model / "best" / "history.json").write_bytes(b"[]")  # not the copy the model sealed
    (model / "history.json").unlink()
    assert "put back" not in rec(world, "export").stderr
    assert not (model / "history.json").exists()


def test_a_run_stopped_before_its_record_keeps_it_in_its_model(world, monkeypatch):
    """The manifest's write, the last of train's, fails (as a kill -9 right after the
    model's swap would stop it): the model carries its run's record, `rec status` reads it
    (train fresh, with the run's parameters, not 'modified'), and the next writing stage
    writes it into the manifest, once."""
    def train_entry() -> dict:
        return json.loads((world / "output" / "manifest.json").read_text())["stages"]["train"]

    before = train_entry()
    run_with_fault(world, monkeypatch, ["train", "--epochs", "1", "--seed", "8"],
                   TRAIN_WRITES, TRAIN_WRITES)
    sealed = json.loads((world / "output" / "model" / "best" / "record.json").read_text())
    assert train_entry() == before and sealed["run"] != before.get("run")
    assert sealed["params"]["seed"] == 8 and sealed["params"]["epochs"] == 1
    status = rec(world, "status", "--format", "json")
    rows = {row["stage"]: row for row in map(json.loads, status.stdout.splitlines())}
    assert rows["train"]["state"] == "fresh" and rows["train"]["params"]["seed"] == 8
    assert rows["save-features"]["state"] == "stale"  # made from the previous model
    assert train_entry() == before  # status reads, and writes nothing
    result = rec(world, "evaluate")
    assert result.exit_code == 0, result.stderr
    assert "the manifest's record of `rec train` was not the one its output carries" in \
        result.stderr
    assert train_entry()["run"] == sealed["run"] and train_entry()["params"]["seed"] == 8
    assert "put back" not in rec(world, "evaluate").stderr  # once
    status = rec(world, "status", "--format", "json")
    assert {row["stage"]: row["state"] for row in map(json.loads, status.stdout.splitlines())}[
        "train"] == "fresh"


def test_read_only_while_train_publishes_its_model(world, monkeypatch):
    best = world / "output" / "model" / "best"
    old = model_is_whole(best)
    message = run_with_fault(world, monkeypatch, ["train", "--epochs", "1", "--seed", "7"],
                             TRAIN_PUBLISHED, TRAIN_WRITES, errno.EROFS)
    assert str(best) in message
    assert model_is_whole(best) == old  # the previous folder was put back


# best-of-run (config.json, weights.npz, run.json, 2 renames), checkpoint (state.json, 3
# renames), the model folder (metrics.json, history.json, record.json, unit.json, 3
# renames), history, manifest
CTR_WRITES = 18
CTR_PUBLISHED = 16


@pytest.mark.parametrize("n", sweep(CTR_WRITES, {4, CTR_PUBLISHED, CTR_WRITES + 1}))
def test_full_disk_at_each_write_of_ctr_train(world, monkeypatch, n):
    model = world / "output" / "ctr" / "model"
    old = model_is_whole(model)
    stage = ["ctr-train", "--model", "wide_deep", "--epochs", "1", "--seed", "7"]
    if run_with_fault(world, monkeypatch, stage, n, CTR_WRITES) is None:
        return
    # whole, every file of the unit: the weights, their config and metrics.json together
    assert (model_is_whole(model) == old) == (n <= CTR_PUBLISHED)
    assert set(snapshot(model)) == set(old) | {"unit.json"}
    assert rec(world, "ctr-predict", "-", input="1 1\n").exit_code == 0
    assert rec(world, *stage).exit_code == 0


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EROFS])
@pytest.mark.parametrize("n", [1, 2, 3])
def test_full_or_read_only_disk_at_each_write_of_evaluate(world, monkeypatch, n, error):
    report = world / "output" / "model" / "eval.json"
    old = report.read_bytes()
    if run_with_fault(world, monkeypatch, ["evaluate", "--seed", "3"], n, 2, error) is None:
        return
    assert (report.read_bytes() == old) == (n == 1)
    assert json.loads(report.read_text())["baselines"]  # whole either way
    assert rec(world, "evaluate").exit_code == 0


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EROFS])
@pytest.mark.parametrize("n", range(1, 11))
def test_full_or_read_only_disk_at_each_write_of_download(world, monkeypatch, n, error):
    data = world / "data"
    old = snapshot(data / "synthetic")
    stage = ["download", "--dataset", "synthetic", *SMALL, "--seed", "7"]
    if run_with_fault(world, monkeypatch, stage, n, 9, error) is None:
        return
    assert (snapshot(data / "synthetic") == old) == (n < 9)  # placed by the 8th write
    assert not [p.name for p in data.iterdir() if p.name.startswith(".synthetic")]
    assert rec(world, *stage).exit_code == 0


# export.json, unit.json, 3 renames (all old until the last), then manifest
@pytest.mark.parametrize("n", sweep(6, {5, 7}))
def test_full_disk_at_each_write_of_export(world, monkeypatch, n):
    export = world / "output" / "export"
    old = snapshot(export)
    if run_with_fault(world, monkeypatch, ["export"], n, 6) is None:
        return
    new = snapshot(export)
    assert (new == old) == (n < 6) and set(new) == set(old)  # swapped in by the 5th write
    assert "unit.json" in new
    assert rec(world, "export").exit_code == 0
