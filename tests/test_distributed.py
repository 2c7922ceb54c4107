"""Data-parallel training with Paddle's launcher: 2 CPU processes over gloo."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from rec.process.launch import launcher_command

from conftest import rec


def metrics(root: Path) -> dict:
    return json.loads((root / "output" / "model" / "best" / "metrics.json").read_text())


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dp")
    assert rec(root, "download", "--dataset", "synthetic", "--users", "300", "--movies", "200",
               "--ratings", "25000").exit_code == 0
    assert rec(root, "preprocess").exit_code == 0
    return root


def test_two_processes_match_one(world, tmp_path):
    single = tmp_path / "single"
    shutil.copytree(world, single)
    assert rec(single, "train", "--epochs", "3").exit_code == 0
    result = rec(world, "train", "--epochs", "3", "--nproc", "2", "--format", "json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)  # stdout: only the result, launcher logs went to stderr
    assert out == metrics(world)
    assert out["processes"] == 2 and out["epochs_run"] == 3
    # the same training up to float rounding: both processes draw the whole batch's dropout
    # masks and divide by the whole batch's counts (rec.twotower.fullstep.StepRows)
    one = metrics(single)
    assert abs(out["tune_rmse"] - one["tune_rmse"]) < 1e-3 * one["tune_rmse"]
    assert abs(out["tune_ndcg@10"] - one["tune_ndcg@10"]) < 1e-2 * one["tune_ndcg@10"]
    assert abs(out["pick_loss"] - one["pick_loss"]) < 1e-4 * one["pick_loss"]
    assert out["threads"] == max(1, len(os.sched_getaffinity(0)) // 2)  # cores shared by 2
    logs = world / "output" / "model" / "launch-logs"
    assert (logs / "workerlog.0").exists() and (logs / "workerlog.1").exists()
    # resume works under the launcher too
    result = rec(world, "train", "--resume", "--epochs", "4", "--nproc", "2")
    assert result.exit_code == 0, result.stderr
    history = json.loads((world / "output" / "model" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]


def test_launcher_command_line():
    cmd = launcher_command(2, "cpu", Path("/tmp/logs"), ["train", "--epochs", "1"])
    assert cmd[1:5] == ["-m", "paddle.distributed.launch", "--nproc_per_node", "2"]
    assert "--devices" not in cmd and cmd[-3:] == ["train", "--epochs", "1"]
    gpu = launcher_command(2, "gpu:2", Path("/tmp/logs"), ["train"])
    assert gpu[gpu.index("--devices") + 1] == "2,3"


def test_ctr_train_two_processes_match_one(world, tmp_path):
    single = tmp_path / "single"
    shutil.copytree(world, single)
    one = rec(single, "ctr-train", "--model", "wide_deep", "--epochs", "2", "--format", "json")
    assert one.exit_code == 0, one.stderr
    two = rec(world, "ctr-train", "--model", "wide_deep", "--epochs", "2", "--nproc", "2", "--format", "json")
    assert two.exit_code == 0, two.stderr
    a, b = json.loads(one.stdout), json.loads(two.stdout)
    assert b["processes"] == 2 and b["train_samples"] == a["train_samples"]
    assert abs(a["auc"] - b["auc"]) < 0.005
    assert (world / "output" / "ctr" / "launch-logs" / "workerlog.1").exists()


@pytest.mark.slow
def test_stopping_the_command_stops_the_launcher_and_its_workers(world):
    """kill <pid of rec train --nproc 2> used to leave the launcher and workers training and
    writing; now the whole process group stops with it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = world / "output"
    cmd = [sys.executable, "-m", "rec", "--data-dir", str(world / "data"), "--output-dir",
           str(out), "--quiet", "train", "--epochs", "500", "--patience", "500", "--nproc", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    logs = out / "model" / "launch-logs"
    deadline = time.time() + 90
    while time.time() < deadline and not (logs / "workerlog.1").exists():
        time.sleep(0.5)
    time.sleep(5)  # the workers are importing paddle or training
    assert proc.poll() is None, "finished before it could be stopped"
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=60) != 0

    def alive() -> list[str]:
        found = subprocess.run(["pgrep", "-f", str(out)], capture_output=True, text=True)
        return found.stdout.split()

    deadline = time.time() + 20
    while alive() and time.time() < deadline:
        time.sleep(0.5)
    assert alive() == []


@pytest.mark.slow
def test_kill_9_of_the_command_stops_the_launcher_and_its_workers(world):
    """They used to train on for the whole run without the lock (the kernel frees it with
    the holder), and a second train's model ended up beside the first one's metrics."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from rec.storage import unit

    out = world / "output"
    cmd = [sys.executable, "-m", "rec", "--data-dir", str(world / "data"), "--output-dir",
           str(out), "train", "--epochs", "300", "--patience", "300", "--nproc", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # only rec is killed, as by `kill -9 PID`
    logs = out / "model" / "launch-logs"
    deadline = time.time() + 90
    while time.time() < deadline and "epoch 1" not in _text(logs / "workerlog.0"):
        time.sleep(0.2)
    assert proc.poll() is None, "finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)

    def alive() -> list[str]:
        return subprocess.run(["pgrep", "-f", str(out)], capture_output=True, text=True).stdout.split()

    deadline = time.time() + 5
    while alive() and time.time() < deadline:
        time.sleep(0.1)
    assert alive() == []
    result = rec(world, "train", "--epochs", "1", "--seed", "7", "--format", "json")
    assert result.exit_code == 0, result.stderr  # the lock is free
    time.sleep(3)  # nothing else writes the model any more
    model = out / "model" / "best"
    config, saved = json.loads((model / "config.json").read_text()), metrics(world)
    assert saved == json.loads(result.stdout)
    assert (saved["seed"], saved["processes"], saved["epochs_run"]) == (7, 1, 1)
    assert (config["train"]["seed"], config["processes"]) == (7, 1)
    sealed = json.loads((model / "unit.json").read_text())["sha256"]
    assert sealed["model.pdparams"] == unit.sha256(model / "model.pdparams")


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
