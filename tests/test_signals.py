"""Signals at awkward moments: while paddle is being imported, and sent to `rec pipeline`
(SIGTERM passed on to the running stage; kill -9 of the pipeline stops the stage too,
rec.process.parent_death). Real processes, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rec.storage import lock

from conftest import ROOT, SMALL, SMALL_WORLD, copy_world, no_leftovers, run_stages

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
TERMINATED = "error: terminated (SIGTERM); files already written are complete"


def start(root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rec", "--data-dir", str(root / "data"),
                             "--output-dir", str(root / "output"), *args], env=ENV, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def processes_of(folder: Path) -> list[int]:
    """Pids of the live processes whose command line names `folder`."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                named = str(folder).encode() in f.read()
            with open(f"/proc/{entry}/stat") as f:
                live = f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            continue
        if named and live and int(entry) != os.getpid():
            found.append(int(entry))
    return found


def wait_until(condition, timeout: float, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def lock_is_free(folder: Path) -> bool:
    try:
        with lock.hold(folder, "test"):
            return True
    except lock.Busy:
        return False


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return run_stages(tmp_path_factory.mktemp("signals"), *SMALL_WORLD)


def loading_paddle(pid: int) -> bool:
    """paddle's core library is mapped: its import has begun."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            return "libpaddle" in f.read()
    except OSError:
        return False


@pytest.mark.parametrize("sig,code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_while_paddle_is_imported_is_one_line_and_the_usual_exit(world, tmp_path,
                                                                           sig, code):
    """Used to be an ImportError ("Can not import paddle core while this file exists"),
    or a silent death by paddle's own handler that left the lock file behind."""
    root = copy_world(world, tmp_path)
    outcomes = []
    for delay in (0.0, 0.05, 0.15, 0.3, 0.5):  # after libpaddle is mapped; the import: ~0.8 s
        proc = start(root, "save-features")
        assert wait_until(lambda: loading_paddle(proc.pid) or proc.poll() is not None, 60)
        time.sleep(delay)
        proc.send_signal(getattr(signal, sig))
        _, stderr = proc.communicate(timeout=60)
        for bad in ("internal error", "Traceback", "Can not import paddle"):
            assert bad not in stderr, stderr
        assert proc.returncode in (code, 0), (delay, proc.returncode, stderr)
        if proc.returncode == code:
            errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
            word = "terminated (SIGTERM)" if sig == "SIGTERM" else "interrupted"
            assert len(errors) == 1 and errors[0].startswith(f"error: {word}"), stderr
        no_leftovers(root / "output")
        assert not (root / "output" / lock.LOCK).exists()  # released and removed
        outcomes.append(proc.returncode)
    assert outcomes.count(code) >= 3, outcomes  # most fall inside the import


def start_pipeline(root: Path) -> subprocess.Popen:
    proc = start(root, "pipeline", "--epochs", "300")
    for line in proc.stderr:  # the train stage's log
        if line.startswith("epoch 1:"):
            return proc
    raise AssertionError(f"pipeline ended before training (exit {proc.wait()})")


def test_sigterm_to_the_pipeline_stops_its_stage_and_exits_143(tmp_path):
    proc = start_pipeline(tmp_path)
    proc.send_signal(signal.SIGTERM)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 143, rest
    errors = [line for line in rest.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(TERMINATED), rest  # the stage's line
    assert "Traceback" not in rest
    assert processes_of(tmp_path / "output") == []
    no_leftovers(tmp_path / "output")
    assert lock_is_free(tmp_path / "output")


def test_kill_9_of_the_pipeline_stops_its_stage(tmp_path):
    """The stage used to run on to the end, holding the lock, after its pipeline was gone."""
    log = tmp_path / "stderr.txt"
    with open(log, "w") as err:  # a file: a closed pipe would stop the stage by itself
        proc = subprocess.Popen([sys.executable, "-m", "rec", "--data-dir",
                                 str(tmp_path / "data"), "--output-dir", str(tmp_path / "output"),
                                 "pipeline", "--epochs", "300"], env=ENV, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=err)
    assert wait_until(lambda: "\nepoch 1:" in log.read_text(), 120, 0.1)  # train's log
    assert set(processes_of(tmp_path / "output")) - {proc.pid}  # the stage runs
    proc.kill()
    proc.wait(timeout=10)
    assert wait_until(lambda: processes_of(tmp_path / "output") == [], 10, 0.1)
    assert log.read_text().splitlines()[-1].startswith(TERMINATED)  # stopped, not finished
    assert lock_is_free(tmp_path / "output")


def test_ctrl_c_in_training_names_the_resume_that_continues_it(world, tmp_path):
    """The interrupted run's line says how to go on (a newcomer read only "interrupted"),
    and that command does continue after the last epoch checkpointed."""
    root = copy_world(world, tmp_path)
    proc = start(root, "train", "--epochs", "300")
    for line in proc.stderr:
        if line.startswith("epoch 2:"):
            break
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130, rest
    errors = [line for line in rest.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: interrupted; "), rest
    epoch = int(errors[0].rsplit("continues after epoch ", 1)[1])
    assert errors[0].endswith(f"; `rec train --resume` continues after epoch {epoch}")
    assert epoch >= 2
    resumed = start(root, "train", "--resume", "--epochs", str(epoch + 1))
    _, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    assert f"epoch {epoch + 1}:" in stderr and f"epoch {epoch}:" not in stderr


def test_a_signal_while_a_run_publishes_waits_for_the_model_history_and_record(tmp_path):
    """Ctrl-C between the swap of the model and the history (or the manifest) left the new
    model beside the old run's history and record: publish now holds it until all three
    are in place, then stops."""
    import json

    from rec.engine.trainer import publish
    from rec.paths import TrainingFolder

    folder = TrainingFolder(tmp_path / "ctr", tmp_path / "ctr" / "model")
    folder.staging.best.mkdir(parents=True)
    (folder.staging.best / "weights.npz").write_bytes(b"new")
    recorded = []

    def record():
        os.kill(os.getpid(), signal.SIGINT)  # arrives while publishing
        recorded.append(True)

    with pytest.raises(KeyboardInterrupt):
        publish(folder, {"auc": 0.7}, [{"epoch": 1}], record)
    assert recorded and (folder.best / "weights.npz").read_bytes() == b"new"
    assert json.loads(folder.history.read_text()) == [{"epoch": 1}]
    assert not folder.staging.best.exists()


def test_an_error_while_publishing_is_told_not_hidden_by_a_waiting_signal(tmp_path):
    """A full disk during publish with Ctrl-C waiting came out as 'interrupted', and
    'the run had ended' with nothing published."""
    from rec.engine.trainer import publish
    from rec.paths import TrainingFolder

    folder = TrainingFolder(tmp_path / "ctr", tmp_path / "ctr" / "model")
    folder.staging.best.mkdir(parents=True)
    (folder.staging.best / "weights.npz").write_bytes(b"new")

    def record():
        os.kill(os.getpid(), signal.SIGINT)
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        publish(folder, {"auc": 0.7}, [{"epoch": 1}], record)
