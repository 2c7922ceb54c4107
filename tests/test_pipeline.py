"""`rec pipeline` (every stage in order, each as its own `rec` process) and bin/pipeline, the
thin wrapper the README's first command runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rec.stages.pipeline import stage_commands

from conftest import rec

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "bin" / "pipeline"
# bin/pipeline runs the `rec` on PATH: this interpreter's, importing this checkout
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
       "PYTHONPATH": str(ROOT)}


def run(*args: str, timeout: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(PIPELINE), *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV, cwd=ROOT)


def test_help_names_every_stage_and_option():
    result = run("--help")
    assert result.returncode == 0 and result.stderr == ""
    assert "Usage: rec pipeline [OPTIONS]" in result.stdout
    for word in ("download", "preprocess", "train", "evaluate", "save-features", "ctr-train",
                 "recommend", "--dataset", "--source", "--seed", "--split", "--device",
                 "--epochs", "--match", "--user", "--top"):
        assert word in result.stdout


def test_unknown_option_is_one_line_and_exit_2():
    result = run("--bogus")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("error: No such option: --bogus")
    assert result.stderr.endswith("(see `rec pipeline --help`)\n")
    assert result.stderr.count("\n") == 1


def test_each_stage_gets_the_options_that_concern_it():
    assert stage_commands("synthetic", None, 7, "time", "gpu:1", 3, "dot") == [
        ["download", "--dataset", "synthetic", "--seed", "7"],
        ["preprocess", "--dataset", "synthetic", "--split", "time", "--seed", "7"],
        ["train", "--device", "gpu:1", "--seed", "7", "--epochs", "3", "--match", "dot"],
        ["save-features", "--device", "gpu:1"],
        ["ctr-train", "--data", "movielens", "--device", "gpu:1", "--model", "wide_deep"],
        ["evaluate", "--device", "gpu:1"],
    ]
    # a real dataset takes no --seed at download (its data is what it is)
    download, preprocess, train, *_ = stage_commands("ml-1m", "ml-1m.zip", 7, None, "cpu",
                                                     None, None)
    assert download == ["download", "--dataset", "ml-1m", "--source", "ml-1m.zip"]
    assert preprocess == ["preprocess", "--dataset", "ml-1m", "--seed", "7"]
    assert train == ["train", "--device", "cpu", "--seed", "7"]


@pytest.mark.parametrize("args,message", [
    (["--split", "weekly"], "error: unknown --split 'weekly': choose random, time, time-user, users"),
    (["--match", "l2"], "error: unknown --match 'l2': choose softmax, dot, cosine"),
    (["--dataset", "ml-5m"], "error: unknown dataset 'ml-5m'"),
    (["--skip", "ctr-train", "--skip", "ctr"], "error: unknown --skip 'ctr': choose among "
     "download, preprocess, train, save-features, ctr-train, evaluate, recommend"),
])
def test_bad_options_stop_before_any_stage_runs(tmp_path, args, message):
    r = rec(tmp_path, "pipeline", *args)
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr.startswith(message) and r.stderr.count("\n") == 1
    assert not (tmp_path / "data").exists() and not (tmp_path / "output").exists()


def test_skipped_stages_do_not_run(tmp_path):
    """Only download runs here; the others say they were skipped."""
    skip = [w for stage in ("preprocess", "train", "evaluate", "save-features", "ctr-train",
                            "recommend") for w in ("--skip", stage)]
    r = rec(tmp_path, "pipeline", *skip)
    assert r.exit_code == 0 and r.stdout == "", r.stderr
    lines = r.stderr.splitlines()
    assert lines[0] == "== rec download --dataset synthetic"
    assert lines[-6:] == [f"== rec {stage}: skipped (--skip)" for stage in (
        "preprocess", "train", "save-features", "ctr-train", "evaluate")] + [
        "== rec recommend: skipped (--skip)"]
    stages = json.loads((tmp_path / "output" / "manifest.json").read_text())["stages"]
    assert list(stages) == ["download"]
    # an option that only skipped stages read is said to be unused (it was ignored silently)
    r = rec(tmp_path, "pipeline", *skip, "--split", "time", "--epochs", "3", "--seed", "3")
    assert r.exit_code == 0, r.stderr
    assert [line for line in r.stderr.splitlines() if line.startswith("warning:")] == [
        "warning: --split is not used: preprocess skipped (--skip)",
        "warning: --epochs is not used: train skipped (--skip)"]


def test_the_pipeline_holds_its_folders_from_the_first_stage_to_the_last(tmp_path, monkeypatch):
    """Each stage took and let go of the folders' locks: between two stages another writer
    got in (a preprocess of another split; a second pipeline), and the run ended "fine" on
    its data (an adversarial trial: 11 preprocesses of 40 got in). Now a writer is refused
    before every stage, while the stages themselves write."""
    from rec.stages import pipeline
    from rec.storage import lock

    tries = []
    real = pipeline.run_stage

    def another_writer_first(global_args, args, **kwargs):
        folders = ["--data-dir", str(tmp_path / "data"), "--output-dir", str(tmp_path / "output")]
        other = subprocess.run([sys.executable, "-m", "rec", *folders, "preprocess",
                                "--split", "users"], capture_output=True, text=True, env=ENV,
                               timeout=120)
        status = subprocess.run([sys.executable, "-m", "rec", *folders, "status", "--format",
                                 "json"], capture_output=True, text=True, env=ENV, timeout=120)
        rows = {r["stage"]: r["state"] for r in map(json.loads, status.stdout.splitlines())}
        tries.append((args[0], other.returncode, other.stderr, rows[args[0]]))
        if args[0] != "download":  # the data folder, shared by projects: download's alone
            assert lock.running(tmp_path / "data") is None
        return real(global_args, args, **kwargs)

    monkeypatch.setattr(pipeline, "run_stage", another_writer_first)
    skip = [w for stage in ("train", "save-features", "ctr-train", "evaluate", "recommend")
            for w in ("--skip", stage)]
    r = rec(tmp_path, "pipeline", *skip)
    assert r.exit_code == 0, r.stderr
    assert [t[0] for t in tries] == ["download", "preprocess"]
    for stage, code, err, state in tries:  # the lock file names the stage running now
        assert code == 2 and f"is in use by `rec {stage} in rec pipeline (pid {os.getpid()})`" \
            in err and state == "running", tries
    split = json.loads((tmp_path / "output" / "dataset" / "vocab.json").read_text())["split"]
    assert split["method"] == "random"  # the pipeline's, not the other writer's
    assert not (tmp_path / "output" / ".lock").exists()  # let go at the end


def test_only_the_holders_own_children_skip_its_lock(tmp_path, monkeypatch):
    """The environment alone never skips a lock: the parent must be the holder, and hold it."""
    from rec.storage import lock

    folder = tmp_path / "out"
    check = ("import sys; from rec.storage import lock; "
             "print(lock.held_by_parent(sys.argv[1]))")

    def child_sees(env: dict) -> str:
        return subprocess.run([sys.executable, "-c", check, str(folder)], capture_output=True,
                              text=True, env={**ENV, **env}, timeout=60).stdout.strip()

    held = lock.for_children([folder])
    with lock.hold(folder, "rec pipeline"):
        assert child_sees(held) == "True"
        assert child_sees({}) == "False"  # not told
        assert child_sees(lock.for_children([tmp_path / "other"])) == "False"  # not this one
        monkeypatch.setenv(lock.HELD_ENV, held[lock.HELD_ENV])
        assert not lock.held_by_parent(folder)  # the holder itself: its parent is not
        monkeypatch.delenv(lock.HELD_ENV)
    assert child_sees(held) == "False"  # told, but the lock is let go


def test_a_source_names_the_dataset_as_download_takes_it(tmp_path):
    """`rec pipeline --source .../ml-100k` is ml-100k (its folder's name), as for download;
    synthetic without a --source; --dataset when given."""
    import shutil

    from rec.stages.pipeline import chosen_dataset

    folder = tmp_path / "ml-100k"
    shutil.copytree(Path(__file__).parent / "fixtures" / "ml100k_five_lines", folder)
    assert chosen_dataset(None, str(folder)) == "ml-100k"
    assert chosen_dataset(None, None) == "synthetic"
    assert chosen_dataset("ml-1m", str(folder)) == "ml-1m"
    skip = [w for stage in ("preprocess", "train", "evaluate", "save-features", "ctr-train",
                            "recommend") for w in ("--skip", stage)]
    r = rec(tmp_path, "pipeline", "--source", str(folder), *skip)
    # download takes it itself (and says what to do if the source is not that dataset)
    assert r.stderr.splitlines()[0] == f"== rec download --source {folder}"
    assert f"--source {folder}: taken as --dataset ml-100k" in r.stderr
    import io
    import zipfile

    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as zf:
        zf.writestr("ml-100k/u.data", "1\t1\t5\t1\n")
    data = data.getvalue()
    at = data.find(b"PK\x01\x02")  # its table of contents damaged: zipfile cannot list it
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(data[:at] + b"XXXX" + data[at + 4:])
    assert chosen_dataset(None, str(damaged)) == "ml-1m"  # download then says it is damaged


def test_a_failing_stage_ends_the_run_with_its_own_error_and_exit_code(tmp_path):
    empty = tmp_path / "empty"  # a folder: checked up front; not a dataset: download says so
    empty.mkdir()
    r = rec(tmp_path, "pipeline", "--dataset", "ml-100k", "--source", str(empty))
    assert r.exit_code == 2 and r.stdout == ""  # bad input, as download exits
    assert r.stderr == (f"== rec download --dataset ml-100k --source {empty}\n"
                        f"error: --source {empty} is not a valid ml-100k dataset: "
                        "ml-100k/u.user is missing\n")
    assert not (tmp_path / "output" / "manifest.json").exists()  # nothing after it ran


@pytest.mark.slow
def test_bin_pipeline_runs_every_stage_and_recommends(tmp_path):
    """The README's first command, in small: ~30 s on two cores."""
    result = run("--output-dir", str(tmp_path / "out"), "--epochs", "1", "--top", "3",
                 "--data-dir", str(tmp_path / "data"), timeout=600)
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert rows[0][:3] == ["user", "rank", "movie"] and [r[1] for r in rows[1:]] == ["1", "2", "3"]
    assert {r[0] for r in rows[1:]} == {"1"}  # the first user in the data
    stages = json.loads((tmp_path / "out" / "manifest.json").read_text())["stages"]
    assert list(stages) == ["download", "preprocess", "train", "save-features", "ctr-train",
                            "evaluate"]
    # each stage recorded its own command line, as typed by hand
    assert stages["train"]["command"].endswith(" train --device cpu --epochs 1")
    status = subprocess.run([sys.executable, "-m", "rec", "--output-dir", str(tmp_path / "out"),
                             "--data-dir", str(tmp_path / "data"), "status", "--format", "json"],
                            capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=60)
    states = {row["stage"]: row["state"] for row in map(json.loads, status.stdout.splitlines())}
    assert states == {**dict.fromkeys(stages, "fresh"), "export": "not run"}  # not a pipeline stage


def test_ctrl_c_says_interrupted_once_when_the_stage_said_it(monkeypatch, capsys):
    """Ctrl-C reaches the pipeline and its stage: the stage says `error: interrupted; ...`
    and, its clean-up slower than the pipeline's second, dies of the SIGINT passed on after
    it. The pipeline stops with 130 and no line of its own (it used to print a second)."""
    import threading

    import typer

    from rec.stages import pipeline

    stage = ("import signal, sys, time\n"
             "def stop(*a):\n"
             "    signal.signal(signal.SIGINT, signal.SIG_DFL)\n"
             "    sys.stderr.write('error: interrupted; files already written are complete\\n')\n"
             "    time.sleep(5)\n"
             "signal.signal(signal.SIGINT, stop)\n"
             "print('ready', flush=True)\n"
             "time.sleep(30)\n")
    started = []
    real_popen = subprocess.Popen

    def popen(command, **kwargs):
        proc = real_popen([sys.executable, "-c", stage], **{**kwargs, "stdout": subprocess.PIPE})
        assert proc.stdout.readline() == "ready\n"
        started.append(proc)
        threading.Timer(0.3, ctrl_c).start()  # while the pipeline waits for the stage
        return proc

    def ctrl_c() -> None:  # the terminal's SIGINT reaches the stage and the pipeline
        started[0].send_signal(signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(pipeline.subprocess, "Popen", popen)
    monkeypatch.setattr(pipeline, "_real_file", lambda stream: False)
    try:
        pipeline.run_stage([], ["train"])
    except KeyboardInterrupt:  # rec.stages.stage would print its own line
        pytest.fail("the pipeline would say `error: interrupted` a second time")
    except typer.Exit as stopped:
        assert stopped.exit_code == 130 and started[0].returncode == -signal.SIGINT
    else:
        pytest.fail("the pipeline went on")


def test_ctrl_c_while_a_command_loads_is_one_line_and_130(tmp_path, monkeypatch):
    """typer ended such a stage with 130 and no word: the pipeline then said nothing at all."""
    from rec import cli

    def interrupted(name):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "load_command", interrupted)
    result = rec(tmp_path, "status")
    assert result.exit_code == 130
    assert result.stderr == "error: interrupted; nothing was changed\n"


def test_a_stopped_run_lets_the_stage_stop_cleanly_then_kills_what_ignores_it(monkeypatch):
    """Ctrl-C on a terminal reaches the stage too, so SIGINT gives the stage a moment, then
    is passed on (the stage's own clean stop); a stage that ignores it is killed after the
    grace period. (SIGTERM is passed on at once: tests/test_signals.py.)"""
    from rec.stages import pipeline

    monkeypatch.setattr(pipeline, "GRACE_S", 1.0)
    code = ("import signal, sys, time\n"
            "signal.signal(signal.SIGINT, lambda *a: sys.exit(130)) if sys.argv[1] == 'obey' "
            "else signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
            "print('ready', flush=True)\n"
            "time.sleep(30)\n")
    for mode, returncode in (("obey", 130), ("ignore", -9)):
        proc = subprocess.Popen([sys.executable, "-c", code, mode], stdout=subprocess.PIPE,
                                text=True)
        assert proc.stdout.readline() == "ready\n"
        pipeline._stop(proc)
        assert proc.returncode == returncode
