"""Kills on purpose: SIGKILL, SIGTERM and SIGINT right after each rename of each folder swap
and in the middle of an epoch, each followed by the next command a user would run. After
each, the artifacts are the old ones or the new ones, whole, the next run restores what a
kill left halfway, and no leftovers remain. (Symlinked folders: test_faults.py.)

The kills are real: the command runs in a child process whose os.rename (or os.replace)
sends the signal to the process itself right after the chosen call (HOOK below).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rec.storage import atomic, lock, recovery
from rec.paths import Paths

from conftest import ROOT, SMALL, SMALL_WORLD, copy_world, rec, run_stages


# Runs in the child before anything else: after the KILL_AFTER-th call of os.KILL_CALL that
# touches KILL_TARGET (a rename of it or of a .NAME.* sibling; a replace onto it), send
# KILL_SIGNAL to this process. Each complete new folder (.NAME.new.*) is first recorded as
# {file: sha256} in KILL_RECORD, so the parent can tell "new, whole" from a mixture.
HOOK = r"""
import hashlib, json, os, signal, sys
target, call = os.path.abspath(os.environ["KILL_TARGET"]), os.environ["KILL_CALL"]
after, signum = int(os.environ["KILL_AFTER"]), getattr(signal, os.environ["KILL_SIGNAL"])
real, seen = getattr(os, call), []

def touches(path):
    path = os.path.abspath(os.fspath(path))
    if call == "replace":
        return path == target
    name, base = os.path.basename(path), os.path.basename(target)
    return os.path.dirname(path) == os.path.dirname(target) and (
        name == base or name.startswith("." + base + "."))

def hooked(src, dst, *args, **kwargs):
    real(src, dst, *args, **kwargs)
    if touches(src) or touches(dst):
        seen.append(dst)
        if ".new." in os.path.basename(os.fspath(dst)):
            digests = {os.path.relpath(os.path.join(d, f), dst):
                       hashlib.sha256(open(os.path.join(d, f), "rb").read()).hexdigest()
                       for d, _, files in os.walk(dst) for f in files}
            with open(os.environ["KILL_RECORD"], "w") as out:
                json.dump(digests, out)
        if len(seen) == after:
            os.kill(os.getpid(), signum)

setattr(os, call, hooked)
"""
RUN_REC = HOOK + "from rec.cli import main\nsys.argv[0] = 'rec'\nmain()\n"


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(root: Path) -> list[str]:
    """Hidden swap leftovers and temporary files anywhere under root."""
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*")
                  if p.name not in (lock.LOCK, ".downloads", ".rec-verified.json"))


def killed(root: Path, target: Path, after: int, sig: str, *args: str, call: str = "rename"
           ) -> tuple[subprocess.CompletedProcess, dict | None]:
    """Run `rec ARGS` in ROOT in a child killed by `sig` after the `after`-th `call` on
    `target`; (the finished child, the last complete new folder's digest or None)."""
    record = root / "kill-record.json"
    record.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KILL_TARGET": str(target),
           "KILL_CALL": call, "KILL_AFTER": str(after), "KILL_SIGNAL": sig,
           "KILL_RECORD": str(record)}
    proc = subprocess.run([sys.executable, "-c", RUN_REC, "--data-dir", str(root / "data"),
                           "--output-dir", str(root / "output"), *args], env=env,
                          capture_output=True, text=True, timeout=120)
    new = json.loads(record.read_text()) if record.exists() else None
    record.unlink(missing_ok=True)
    return proc, new


def exit_status(sig: str) -> int:
    """What a child ends with: -9 for SIGKILL, else 128 + the signal (rec's own exit)."""
    return -signal.SIGKILL if sig == "SIGKILL" else 128 + getattr(signal, sig)


def assert_one_interrupt_line(proc, sig: str) -> None:
    assert proc.returncode == exit_status(sig), proc.stderr
    if sig != "SIGKILL":
        assert "Traceback" not in proc.stderr and "FatalError" not in proc.stderr, proc.stderr
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
        word = "terminated (SIGTERM)" if sig == "SIGTERM" else "interrupted"
        assert len(errors) == 1 and errors[0].startswith(f"error: {word}"), proc.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A small synthetic world: preprocessed, trained, features saved, CTR trained."""
    return run_stages(tmp_path_factory.mktemp("kills"), *SMALL_WORLD, ["ctr-train", "--model", "wide_deep", "--epochs", "1"])


@pytest.fixture
def world(trained, tmp_path) -> Path:
    return copy_world(trained, tmp_path)


# --- the swap itself, in a child that only swaps ----------------------------------------------

SWAP = HOOK + r"""
from rec.process import interrupts
from rec.storage.atomic import atomic_dir
with interrupts.sigterm_interrupts(), atomic_dir(sys.argv[1]) as tmp:
    for i in range(3):
        (tmp / f"part{i}").write_text("new")
"""


def swap_killed(target: Path, after: int, sig: str = "SIGKILL", renamed: Path | None = None
                ) -> subprocess.CompletedProcess:
    """Swap a new folder in for `target`, killed after the `after`-th rename (of `renamed`,
    the folder a symlink `target` points to)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KILL_TARGET": str(renamed or target),
           "KILL_CALL": "rename", "KILL_AFTER": str(after), "KILL_SIGNAL": sig,
           "KILL_RECORD": os.devnull}
    return subprocess.run([sys.executable, "-c", SWAP, str(target)], env=env,
                          capture_output=True, text=True, timeout=60)


def old_folder(path: Path) -> None:
    path.mkdir(parents=True)
    for i in range(3):
        (path / f"part{i}").write_text("old")


@pytest.mark.parametrize("after,expected", [(1, "old"), (2, "new"), (3, "new")])
@pytest.mark.parametrize("linked", [False, True])
def test_repair_after_a_kill_at_each_rename_restores_a_whole_folder(tmp_path, after, expected,
                                                                    linked):
    """Renames: .NAME.XXXX.tmp -> .NAME.new.N (complete), NAME -> .NAME.old.N, .NAME.new.N ->
    NAME. A kill after the first leaves the old folder in place, after the second the
    target missing (the new copy is restored), after the third the old copy aside."""
    if linked:  # NAME is a symlink to a folder elsewhere: the swap happens there
        old_folder(tmp_path / "big" / "ds")
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "ds").symlink_to(tmp_path / "big" / "ds")
        target, real = tmp_path / "out" / "ds", tmp_path / "big" / "ds"
    else:
        old_folder(tmp_path / "out" / "ds")
        target = real = tmp_path / "out" / "ds"
    assert swap_killed(target, after, renamed=real).returncode == -signal.SIGKILL
    assert os.path.lexists(real) == (after != 2)
    assert atomic.needs_repair(target) == (after == 2)
    atomic.repair(target)
    assert {p.name: p.read_text() for p in target.iterdir()} == \
        {f"part{i}": expected for i in range(3)}
    assert target.is_symlink() == linked
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("sig,raised,code", [("SIGTERM", "rec.process.interrupts.Terminated", 1),
                                             ("SIGINT", "KeyboardInterrupt", -signal.SIGINT)])
def test_sigterm_and_sigint_wait_for_the_renames(tmp_path, sig, raised, code):
    """Signalled between the renames, the swap still completes; then the signal acts (the
    bare child, without rec's command wrapper, ends in the exception's traceback; Python
    reports an uncaught KeyboardInterrupt as killed by SIGINT)."""
    old_folder(tmp_path / "ds")
    proc = swap_killed(tmp_path / "ds", 2, sig)
    assert proc.returncode == code and proc.stderr.splitlines()[-1] == raised, proc.stderr
    assert {p.read_text() for p in (tmp_path / "ds").iterdir()} == {"new"}
    assert leftovers(tmp_path) == []


def test_repair_knows_the_former_download_names_and_removes_temporary_files(tmp_path):
    old_folder(tmp_path / "ds")
    (tmp_path / "ds").rename(tmp_path / ".ds.dead.old")  # rec download's former names
    (tmp_path / ".ds.beef.staging").mkdir()
    (tmp_path / ".ds.x1y2.tmp").mkdir()  # a folder killed while being built
    (tmp_path / ".ds.v2.new.1").mkdir()  # another target's (ds.v2): not touched
    assert atomic.repair(tmp_path / "ds") == tmp_path / ".ds.dead.old"
    assert {p.read_text() for p in (tmp_path / "ds").iterdir()} == {"old"}
    assert leftovers(tmp_path) == [".ds.v2.new.1"]
    (tmp_path / ".manifest.json.abc.tmp").write_text("{")
    assert atomic.sweep(tmp_path) == [tmp_path / ".manifest.json.abc.tmp"]


# --- each stage, killed at each rename of its swap, then the next command -------------------


@pytest.mark.parametrize("after,sig", [
    (1, "SIGKILL"), (2, "SIGKILL"), (3, "SIGKILL"), (2, "SIGTERM"), (2, "SIGINT")])
def test_preprocess_killed_in_its_swap(world, after, sig):
    dataset = world / "output" / "dataset"
    before = digest(dataset)
    proc, new = killed(world, dataset, after, sig, "preprocess", "--seed", "7")
    assert_one_interrupt_line(proc, sig)
    assert new is not None and new != before
    status = rec(world, "status", "--format", "json")  # a reader: repairs, the lock is free
    assert status.exit_code == 0, status.stderr
    assert digest(dataset) == (before if after == 1 and sig == "SIGKILL" else new)
    assert leftovers(world) == []  # no writer ran: the reader removed them
    if after == 2 and sig == "SIGKILL":
        assert "the new copy is back in place" in status.stderr
    result = rec(world, "preprocess", "--seed", "7")  # and the writer goes on as usual
    assert result.exit_code == 0, result.stderr
    assert digest(dataset) == new


def test_save_features_killed_between_its_renames_then_recommend(world):
    features = world / "output" / "features"
    shown = rec(world, "recommend", "1", "--format", "json").stdout
    proc, new = killed(world, features, 2, "SIGKILL", "save-features")
    assert proc.returncode == -signal.SIGKILL and not features.exists()
    result = rec(world, "recommend", "1", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert digest(features) == new and result.stdout == shown  # same model, same features
    assert leftovers(world) == []


@pytest.mark.parametrize("after,epoch", [pytest.param(4, 1, marks=pytest.mark.slow), (5, 2),
                                         pytest.param(6, 2, marks=pytest.mark.slow)])
def test_train_killed_in_a_checkpoint_swap_resumes(world, after, epoch):
    """Renames 1-3 swap epoch 1's checkpoint in, 4-6 epoch 2's: killed after the 4th, the
    repair keeps epoch 1; after the 5th (checkpoint gone) or the 6th, epoch 2."""
    model = world / "output" / "model"
    published = digest(model / "best")
    proc, _ = killed(world, model / "checkpoint", after, "SIGKILL", "train", "--epochs", "3")
    assert proc.returncode == -signal.SIGKILL
    assert digest(model / "best") == published  # not replaced
    result = rec(world, "train", "--resume", "--epochs", "3", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert f"resuming after epoch {epoch}" in result.stderr
    assert json.loads(result.stdout)["epochs_run"] == 3
    assert leftovers(world) == []


def test_a_fresh_train_killed_before_its_first_checkpoint_leaves_nothing_to_resume(world):
    """The world's checkpoint is an earlier run's. A fresh run killed once its epoch 1 is
    staged (best-of-run) but before its own checkpoint: --resume must not continue the
    earlier run (its end would publish this run's staged model under the earlier run's
    metrics); it says there is nothing to resume, and a fresh run trains. The earlier
    checkpoint is left as it was."""
    model = world / "output" / "model"
    assert (model / "checkpoint" / "state.json").exists()
    published, checkpoint = digest(model / "best"), digest(model / "checkpoint")
    proc, _ = killed(world, model / "best-of-run", 2, "SIGKILL", "train", "--epochs", "2")
    assert proc.returncode == -signal.SIGKILL
    assert digest(model / "best") == published  # not replaced
    assert digest(model / "checkpoint") == checkpoint
    result = rec(world, "train", "--resume", "--epochs", "3")
    assert result.exit_code == 2 and "nothing to resume" in result.stderr, result.stderr
    assert rec(world, "train", "--epochs", "1").exit_code == 0
    assert leftovers(world) == []


def test_ctr_train_killed_between_the_renames_of_its_model(world):
    ctr_model = world / "output" / "ctr" / "model"
    proc, new = killed(world, ctr_model, 2, "SIGKILL", "ctr-train", "--model", "wide_deep", "--epochs", "2")
    assert proc.returncode == -signal.SIGKILL and not ctr_model.exists()
    assert rec(world, "status").exit_code == 0
    assert digest(ctr_model) == new
    assert leftovers(world) == []


def test_train_killed_between_the_renames_of_its_model_then_evaluate(world):
    """The model, its config, its metrics and its history are one folder
    (output/model/best): killed with none in place, the next command puts the run's whole
    model back, and history.json beside it from the model's copy, and the manifest's
    record from the model's (the kill came before the run wrote them)."""
    best = world / "output" / "model" / "best"
    proc, new = killed(world, best, 2, "SIGKILL", "train", "--epochs", "2")
    assert proc.returncode == -signal.SIGKILL and not best.exists()
    assert rec(world, "evaluate").exit_code == 0
    assert digest(best) == new and set(new) == {"model.pdparams", "config.json",
                                                "metrics.json", "history.json", "unit.json",
                                                "run.json", "record.json"}
    history = (world / "output" / "model" / "history.json").read_bytes()
    assert history == (best / "history.json").read_bytes() and len(json.loads(history)) == 2
    stages = json.loads((world / "output" / "manifest.json").read_text())["stages"]
    assert stages["train"]["run"] == json.loads((best / "record.json").read_text())["run"]
    assert stages["train"]["params"]["epochs"] == 2
    assert leftovers(world) == []


def kept_earlier_checkpoint(folder, staged) -> bool:
    """A training folder after a kill: is its checkpoint an earlier run's while the model
    staged beside it is this run's (the run ids in state.json and run.json differ)?"""
    state = folder.parent / "checkpoint" / "state.json"
    if not (staged.is_dir() and state.exists()):
        return False
    run = json.loads((staged / "run.json").read_text())["run_id"]
    return json.loads(state.read_text()).get("run_id") != run


# Every swap of every stage: (the command, the folder it swaps, a command run first so that
# the folder has a previous version, how many renames touch the folder before the kill
# points run out, the next command a user would run).
EVERY_SWAP = [
    (["preprocess", "--seed", "7"], "output/dataset", None, 3, ["train", "--epochs", "1"]),
    (["save-features"], "output/features", None, 3, ["recommend", "1"]),
    (["train", "--epochs", "2"], "output/model/checkpoint", None, 3,
     ["train", "--resume", "--epochs", "3"]),
    (["train", "--epochs", "2"], "output/model/best-of-run", None, 2,
     ["train", "--resume", "--epochs", "3"]),
    (["train", "--epochs", "2"], "output/model/best", None, 3, ["save-features"]),
    (["ctr-train", "--model", "wide_deep", "--epochs", "2"], "output/ctr/checkpoint", None, 3,
     ["ctr-train", "--model", "wide_deep", "--resume", "--epochs", "3"]),
    (["ctr-train", "--model", "wide_deep", "--epochs", "2"], "output/ctr/best-of-run", None, 2,
     ["ctr-train", "--model", "wide_deep", "--resume", "--epochs", "3"]),
    (["ctr-train", "--model", "wide_deep", "--epochs", "2"], "output/ctr/model", None, 3, ["recommend", "1"]),
    (["export"], "output/export", ["export"], 3, ["status"]),
    (["download", "--dataset", "synthetic", *SMALL, "--seed", "9"], "data/synthetic", None, 3,
     ["download", "--dataset", "synthetic", *SMALL, "--seed", "9"]),
]


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM", "SIGINT"])
@pytest.mark.parametrize("after", [1, 2, 3])
@pytest.mark.parametrize("command,folder,first,renames,then", EVERY_SWAP,
                         ids=[row[1] for row in EVERY_SWAP])
def test_every_swap_killed_at_every_rename(world, command, folder, first, renames, then,
                                           after, sig):
    if after > renames:
        pytest.skip(f"{folder}'s first swap has {renames} renames")
    if first:
        assert rec(world, *first).exit_code == 0
    target = world / folder
    before = digest(target) if target.exists() else None
    proc, new = killed(world, target, after, sig, *command)
    assert_one_interrupt_line(proc, sig)
    kept = sig == "SIGKILL" and after == 1 and before is not None
    if folder.startswith("output/"):  # a reader repairs output/ when no writer runs
        assert rec(world, "status").exit_code == 0
        assert leftovers(world / "output") == []
        assert digest(target) == (before if kept else new)
    # a fresh training run stopped once it has staged its first model (best-of-run) but
    # before its own first checkpoint: the checkpoint left is the earlier run's, whose model
    # is gone, so there is nothing to resume (rec.engine.trainer._check_own_model) and the
    # next run starts afresh; stopped before it staged one, the earlier run resumes
    staged = (world / folder).parent / "best-of-run"
    unfinished = folder.endswith(("/best-of-run", "/checkpoint")) and kept_earlier_checkpoint(
        world / folder, staged)
    if unfinished:
        resumed = rec(world, *then)
        assert resumed.exit_code == 2 and "nothing to resume" in resumed.stderr, resumed.stderr
        then = [arg for arg in then if arg != "--resume"]
    result = rec(world, *then)
    assert result.exit_code == 0, (then, result.stderr)
    assert leftovers(world) == []


# --- a real signal in the middle of training ----------------------------------------------------


def wait_for_epoch(proc, state: Path, epoch: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            if json.loads(state.read_text())["epoch"] >= epoch:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.02)
    raise AssertionError(f"epoch {epoch} never checkpointed")


@pytest.mark.parametrize("sig", ["SIGTERM", pytest.param("SIGINT", marks=pytest.mark.slow),
                                 pytest.param("SIGKILL", marks=pytest.mark.slow)])
def test_a_signal_mid_training_keeps_the_model_and_resume_works(world, sig):
    model = world / "output" / "model"
    published = digest(model / "best")
    cmd = [sys.executable, "-m", "rec", "--data-dir", str(world / "data"), "--output-dir",
           str(world / "output"), "train", "--epochs", "500", "--patience", "500"]
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_epoch(proc, model / "checkpoint" / "state.json", 2)  # the old one says 1
        proc.send_signal(getattr(signal, sig))
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert_one_interrupt_line(subprocess.CompletedProcess(cmd, proc.returncode, "", stderr), sig)
    assert digest(model / "best") == published
    if sig != "SIGKILL":
        assert leftovers(world) == []  # no .tmp folder, nothing aside
    epoch = json.loads((model / "checkpoint" / "state.json").read_text())["epoch"]
    result = rec(world, "train", "--resume", "--epochs", str(epoch + 1), "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert f"resuming after epoch {epoch}" in result.stderr
    assert leftovers(world) == []
    assert digest(model / "best")["model.pdparams"] != published["model.pdparams"]


# --- readers ----------------------------------------------------------------


def test_a_reader_that_cannot_take_the_lock_says_which_stage_restores(world, monkeypatch):
    features = world / "output" / "features"
    features.rename(world / "output" / ".features.new.1")  # as if killed between the renames

    def read_only(*args, **kwargs):
        raise lock.RecError("cannot use output for output: Read-only file system")

    monkeypatch.setattr(lock, "hold", read_only)
    result = rec(world, "recommend", "1")
    assert result.exit_code != 0
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warning) == 1 and "run `rec save-features` (or any writing stage)" in warning[0]
    monkeypatch.undo()
    assert rec(world, "recommend", "1").exit_code == 0  # the lock is free: it repairs
    assert leftovers(world) == []


def test_a_reader_leaves_a_running_writers_swap_alone(world, monkeypatch):
    features = world / "output" / "features"
    features.rename(world / "output" / ".features.new.1")
    paths = Paths(world / "data", world / "output")
    with lock.hold(world / "output", "rec save-features"):
        recovery.recover_as_reader(paths, "rec status")
        assert not features.exists()  # the writer's swap, in progress: not touched
    monkeypatch.setenv("PADDLE_TRAINERS_NUM", "2")  # a --nproc worker: its launcher repairs
    recovery.recover_as_reader(paths, "rec status")
    assert not features.exists()
    monkeypatch.delenv("PADDLE_TRAINERS_NUM")
    assert rec(world, "status").exit_code == 0 and features.is_dir()
