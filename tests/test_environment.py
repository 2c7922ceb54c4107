"""Faults of the environment and hostile values: folders that cannot take a file (found
before any work), errno mapping, standard output closed or full, a manifest rec did not
write, option values beyond what the code can hold, hostile archives. Each ends in one line
(or, for a reader of stdout that went away, a quiet exit 141), never a traceback."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from rec.storage import manifest
from rec.datasets import registry, synthetic
from rec.errors import environment_error

from conftest import (ROOT, SMALL, SMALL_WORLD, copy_world, one_line_error, rec, run_stages,
                      snapshot)



@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    return run_stages(tmp_path_factory.mktemp("environment"), *SMALL_WORLD, ["ctr-train", "--model", "wide_deep", "--epochs", "1"])


@pytest.fixture
def world(trained, tmp_path) -> Path:
    return copy_world(trained, tmp_path)


# --- before any work: folders that cannot take a file -----------------------------------------

# stage, the attribute doing its work (never reached: under rec.), the folder it writes into
WRITERS = [
    (["download", "--dataset", "synthetic", *SMALL], "stages.download.generate_synthetic", "data"),
    (["preprocess"], "stages.preprocess.read_raw", "output"),
    (["train", "--epochs", "1"], "twotower.fit.train", "output/model"),
    (["evaluate"], "rank.evaluation.evaluate", "output/model"),
    (["save-features"], "twotower.saving.save", "output"),
    (["ctr-train", "--model", "wide_deep", "--epochs", "1"], "ctr.fit.train", "output/ctr"),
    (["export"], "ctr.serving.export_all", "output"),
]


def never_reached(monkeypatch, attribute: str) -> None:
    import importlib

    module, name = attribute.rsplit(".", 1)

    def work(*args, **kwargs):
        raise AssertionError(f"{attribute} ran: the fault was found after the work began")

    monkeypatch.setattr(importlib.import_module(f"rec.{module}"), name, work)


def read_only(monkeypatch, folder: Path) -> None:
    """Creating, replacing or renaming anything in `folder` fails as on a read-only mount
    (tests run as root, for whom permissions do not stop a write)."""
    inside = lambda path: Path(os.fsdecode(path)).absolute().is_relative_to(folder.absolute())

    def guard(real, writes=lambda *a: True):
        def call(path, *args, **kwargs):
            target = args[0] if real in (os.replace, os.rename) else path
            if inside(target) and writes(*args):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(target))
            return real(path, *args, **kwargs)
        return call

    flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT
    monkeypatch.setattr(os, "open", guard(os.open, lambda f, *a: f & flags))
    for name in ("mkdir", "replace", "rename"):
        monkeypatch.setattr(os, name, guard(getattr(os, name)))


@pytest.mark.parametrize("stage,work,folder", WRITERS, ids=[w[0][0] for w in WRITERS])
def test_a_read_only_folder_stops_each_writer_before_its_work(world, monkeypatch, stage, work,
                                                               folder):
    before = snapshot(world)
    never_reached(monkeypatch, work)
    read_only(monkeypatch, world / folder)
    message = one_line_error(rec(world, *stage), 1)
    assert message == (f"error: cannot write {world / folder}: Read-only file system; "
                       f"nothing was changed")
    monkeypatch.undo()
    assert snapshot(world) == before


@pytest.mark.parametrize("stage,work,folder", WRITERS, ids=[w[0][0] for w in WRITERS])
def test_a_file_where_a_folder_should_be_stops_each_writer(world, monkeypatch, stage, work,
                                                           folder):
    never_reached(monkeypatch, work)
    blocker = world / "a-file"
    blocker.write_text("mine\n")
    for where in (["--data-dir", str(blocker)] if folder == "data" else
                  ["--output-dir", str(blocker)], ["--output-dir", str(blocker / "sub")]):
        r = rec(None, "--data-dir", str(world / "data"), "--output-dir", str(world / "output"),
                *where, *stage)
        assert one_line_error(r, 2) == (f"error: {blocker} is a file, not a folder: move it "
                                        f"away or choose another folder; nothing was changed")
    if folder.startswith("output/"):  # output/model, output/ctr
        target = world / folder
        import shutil

        shutil.rmtree(target)
        target.write_text("mine\n")
        assert f"{target} is a file, not a folder" in one_line_error(rec(world, *stage), 2)
        assert target.read_text() == "mine\n"
    assert blocker.read_text() == "mine\n"


# the folders each stage replaces whole (a file there was met only at the swap, after the work)
SWAPPED = [(["preprocess"], "stages.preprocess.read_raw", "output/dataset"),
           (["save-features"], "twotower.saving.save", "output/features"),
           (["export"], "ctr.serving.export_all", "output/export"),
           (["ctr-train", "--model", "wide_deep", "--epochs", "1"], "ctr.fit.train", "output/ctr/model"),
           (["ctr-train", "--model", "wide_deep", "--epochs", "1"], "ctr.fit.train", "output/ctr/checkpoint"),
           (["train", "--epochs", "1"], "twotower.fit.train", "output/model/checkpoint")]


@pytest.mark.parametrize("stage,work,folder", SWAPPED, ids=[w[2] for w in SWAPPED])
def test_a_file_where_a_swapped_folder_should_be_stops_the_stage_before_its_work(
        world, monkeypatch, stage, work, folder):
    import shutil

    never_reached(monkeypatch, work)
    target = world / folder
    if target.is_dir():
        shutil.rmtree(target)
    target.write_text("mine\n")
    assert f"{target} is a file, not a folder" in one_line_error(rec(world, *stage), 2)
    assert target.read_text() == "mine\n"


@pytest.mark.parametrize("command", [["recommend", "1"], ["similar", "1"], ["status"],
                                     ["ctr-predict", "-"]])
def test_readers_given_a_file_for_the_output_folder_say_so(tmp_path, command):
    blocker = tmp_path / "a-file"
    blocker.write_text("mine\n")
    r = rec(None, "--output-dir", str(blocker), *command, input="")
    assert one_line_error(r, 2) == (f"error: {blocker} is a file, not a folder: give "
                                    f"--output-dir a folder")


def test_environment_errors_name_the_path_in_one_line(tmp_path):
    path = tmp_path / "output" / "model" / "eval.json"
    for code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPIPE):
        error = environment_error(OSError(code, os.strerror(code), str(path)))
        verb = "access" if code in (errno.EACCES, errno.EPIPE) else "write"  # maybe a read
        assert (str(error), error.exit_code) == (
            f"cannot {verb} {path}: {os.strerror(code)}; the previous artifacts are kept", 1)
    (tmp_path / "output").write_text("")
    error = environment_error(OSError(errno.ENOTDIR, "Not a directory", str(path)), True)
    assert (str(error), error.exit_code) == (
        f"{tmp_path / 'output'} is a file, not a folder: move it away or choose another "
        f"folder; nothing was changed", 2)
    assert environment_error(OSError(errno.EINVAL, "Invalid argument", str(path))) is None


# --- standard output: closed, full, a reader that went away ---------------------------------


def run_rec(world: Path, *args: str, **popen) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "rec", "--data-dir", str(world / "data"),
               "--output-dir", str(world / "output"), *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(command, env=env, cwd=world, timeout=120, **popen)


@pytest.mark.parametrize("args", [["recommend", "--all"], ["--help"], ["status"]])
def test_a_reader_that_went_away_ends_the_command_quietly(trained, args):
    """As a Unix tool killed by SIGPIPE: exit 141 (what `set -o pipefail` sees from
    `yes | head -1`), nothing on stderr but the logs."""
    command = [sys.executable, "-m", "rec", "-q", "--data-dir", str(trained / "data"),
               "--output-dir", str(trained / "output"), *args]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    proc.stdout.close()  # before rec writes anything: its first write meets EPIPE
    stderr = proc.stderr.read().decode()
    assert (proc.wait(timeout=120), stderr) == (141, "")


def test_a_reader_that_goes_away_midway_through_a_block_ends_it_with_141(trained):
    """`rec recommend --all | head -1` on more than a pipe holds: the block of rows written
    at once meets the reader's going while it is written (a short write, which Python's
    text layer dropped without a word: exit 0, the rows cut short)."""
    command = [sys.executable, "-m", "rec", "-q", "--data-dir", str(trained / "data"),
               "--output-dir", str(trained / "output"), "recommend", "--all", "--top", "60"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().startswith(b"user\trank\tmovie")  # written on its own
    assert proc.stdout.readline().startswith(b"1\t1\t")  # the block is being written
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert (proc.wait(timeout=120), stderr) == (141, "")


@pytest.mark.parametrize("args", [["recommend", "-"], ["recommend", "--rated", "-"],
                                  ["history", "-"]])
def test_a_closed_stdin_read_by_dash_is_one_line(trained, args):
    """`rec recommend - <&-` was an internal error (AttributeError: sys.stdin is None)."""
    proc = run_rec(trained, *args, capture_output=True, text=True,
                   preexec_fn=lambda: os.close(0))
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        2, "", "error: standard input is closed: pipe or redirect what `-` reads into it\n")


def test_a_closed_or_full_stdout_is_one_line(trained):
    closed = run_rec(trained, "recommend", "1", capture_output=False, stderr=subprocess.PIPE,
                     pass_fds=(), preexec_fn=lambda: os.close(1), text=True)
    assert closed.returncode == 1
    assert closed.stderr.splitlines() == [
        "error: standard output is closed: send it to a file or to /dev/null (`> /dev/null`) "
        "instead of closing it"]
    if not Path("/dev/full").exists():
        return
    for args in (["recommend", "1"], ["--help"], ["-q", "status", "--format", "json"]):
        with open("/dev/full", "w") as full:
            proc = run_rec(trained, *args, stdout=full, stderr=subprocess.PIPE, text=True)
        assert proc.returncode == 1, args
        assert proc.stderr.splitlines()[-1] == ("error: cannot write the results to standard "
                                                "output: No space left on device"), args
    no_stderr = run_rec(trained, "recommend", "1", "--format", "json", capture_output=True,
                        text=True, preexec_fn=lambda: os.close(2))
    assert no_stderr.returncode == 0 and len(no_stderr.stdout.splitlines()) == 10


# --- a manifest rec did not write -------------------------------------------------------------

ENTRY = {"command": "rec train", "params": {}, "version": "0", "time": "t", "inputs": {},
         "outputs": {}, "order": 1}
FOREIGN = {
    "not JSON": "garbage{",
    "a list": "[1, 2]",
    "nested too deep": "[" * 100_000 + "]" * 100_000,
    "an entry of the wrong type": json.dumps({"stages": {"train": {**ENTRY, "inputs": [1]}}}),
    "an unknown stage": json.dumps({"stages": {"deploy": ENTRY}}),
    "a path outside output/": json.dumps(
        {"stages": {"train": {**ENTRY, "outputs": {"/": "x"}}}}),
    "a relative path": json.dumps({"stages": {"train": {**ENTRY, "inputs": {"a": None}}}}),
    "an order beyond int64": json.dumps({"stages": {"train": {**ENTRY, "order": 10 ** 30}}}),
    "an infinite order": '{"stages": {"train": {"inputs": {}, "outputs": {}, "order": 1e999}}}',
    "a 5000-digit number": '{"stages": {"train": {"order": ' + "9" * 5000 + "}}}",
    "a lone surrogate": json.dumps({"stages": {"train": {**ENTRY, "command": "\ud800"}}}),
    "NaN": json.dumps({"stages": {"train": {**ENTRY, "params": {"lr": float("nan")}}}}),
}


@pytest.mark.parametrize("text", FOREIGN.values(), ids=FOREIGN.keys())
def test_a_foreign_manifest_is_unreadable_for_status_and_replaced_by_a_stage(world, text):
    path = world / "output" / "manifest.json"
    path.write_text(text)
    status = rec(world, "status")
    assert status.stdout == ""
    assert one_line_error(status, 1).startswith(f"error: {path} is unreadable (")
    r = rec(world, "evaluate")
    assert r.exit_code == 0 and f"warning: {path} is unreadable (" in r.stderr
    assert list(json.loads(path.read_text())["stages"]) == ["evaluate"]
    # the model carries its own record (rec.storage.records): status reads it, and the next
    # writing stage writes it into the new manifest
    states = [line.split("\t")[:2] for line in rec(world, "status").stdout.splitlines()[1:]]
    assert ["evaluate", "fresh"] in states and ["train", "fresh"] in states
    assert "put back from it" in rec(world, "evaluate").stderr
    assert "train" in json.loads(path.read_text())["stages"]


def test_a_manifest_that_is_a_folder_stops_writers_before_their_work(world):
    path = world / "output" / "manifest.json"
    path.unlink()
    path.mkdir()
    assert "is unreadable (Is a directory)" in one_line_error(rec(world, "status"), 1)
    message = one_line_error(rec(world, "evaluate"), 2)
    assert message == (f"error: {path} is a folder where a file is written: move it away; "
                       f"nothing was changed")


def test_a_copied_output_folder_keeps_its_record(world, tmp_path):
    import shutil

    shutil.copytree(world / "output", tmp_path / "copy")
    r = rec(None, "--data-dir", str(world / "data"), "--output-dir", str(tmp_path / "copy"),
            "status")
    assert r.exit_code == 0, r.stderr
    assert ["train", "fresh"] in [line.split("\t")[:2] for line in r.stdout.splitlines()]


def test_a_copied_project_is_checked_against_its_own_data(world, tmp_path):
    """A project (data/ and output/) copied elsewhere: status reads the copy's data, not the
    folder the manifest was written in: fresh as copied, and a change to the copy's data
    shows in the copy alone."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(world / "data", copy / "data")
    shutil.copytree(world / "output", copy / "output")

    def states(root: Path) -> dict:
        r = rec(root, "status")
        assert r.exit_code == 0, r.stderr
        return dict(line.split("\t")[:2] for line in r.stdout.splitlines()[1:])
    assert states(copy)["download"] == "fresh" and states(copy)["preprocess"] == "fresh"
    # a stage run in the copy with another data folder leaves the pairing for a later read
    r = rec(None, "--data-dir", str(copy / "output" / "data"), "--output-dir",
            str(copy / "output"), "evaluate")
    assert r.exit_code == 0, r.stderr
    data = next(p for p in sorted((copy / "data").rglob("*")) if p.is_file() and
                p.suffix in (".dat", ".csv", ".data", ".tsv"))
    with data.open("a") as f:
        f.write("\n")
    assert (states(copy)["download"], states(copy)["preprocess"]) == ("modified", "stale")
    assert (states(world)["download"], states(world)["preprocess"]) == ("fresh", "fresh")


def test_a_data_folder_inside_the_output_folder_stays_when_only_the_output_moves(tmp_path):
    """--data-dir inside the output folder, the output folder copied alone and read with the
    original data folder: the data paths stay (they follow their own pair, not the output
    folder's move), so a change to the data in use shows."""
    import shutil

    first = tmp_path / "a" / "output"
    assert rec(None, "--data-dir", str(first / "data"), "--output-dir", str(first), "download",
               "--dataset", "synthetic", "--users", "30", "--movies", "40",
               "--ratings", "300").exit_code == 0
    second = tmp_path / "b" / "output"
    shutil.copytree(first, second)

    def download_state() -> str:
        r = rec(None, "--data-dir", str(first / "data"), "--output-dir", str(second), "status",
                "--format", "json")
        assert r.exit_code == 0, r.stderr
        return {json.loads(line)["stage"]: json.loads(line)["state"]
                for line in r.stdout.splitlines()}["download"]
    assert download_state() == "fresh"
    data = next(p for p in sorted((first / "data").rglob("*")) if p.is_file() and
                p.suffix in (".dat", ".csv", ".data", ".tsv"))
    with data.open("a") as f:
        f.write("\n")
    assert download_state() == "modified"


def test_an_output_folder_inside_the_data_folder_keeps_its_record_when_copied(tmp_path):
    """--data-dir a folder that holds the output folder (`--data-dir .`), the output folder
    copied alone: its own paths follow it (the folder they are deepest in), the data paths
    stay; the manifest reads, fresh."""
    import shutil

    project = tmp_path / "a"
    for stage in (["download", "--dataset", "synthetic", "--users", "30", "--movies", "40",
                   "--ratings", "300"], ["preprocess"]):
        r = rec(None, "--data-dir", str(project), "--output-dir", str(project / "output"), *stage)
        assert r.exit_code == 0, r.stderr
    shutil.copytree(project / "output", tmp_path / "b" / "output")
    r = rec(None, "--data-dir", str(project), "--output-dir", str(tmp_path / "b" / "output"),
            "status", "--format", "json")
    assert r.exit_code == 0, r.stderr
    states = {json.loads(line)["stage"]: json.loads(line)["state"] for line in r.stdout.splitlines()}
    assert (states["download"], states["preprocess"]) == ("fresh", "fresh")


def test_a_folder_fingerprint_stops_at_a_bound(tmp_path, monkeypatch):
    from rec.storage import fingerprints

    monkeypatch.setattr(fingerprints, "FOLDER_FILES", 3)
    for i in range(5):
        (tmp_path / f"f{i}").write_text("x")
    assert manifest.fingerprint(tmp_path) == manifest.TOO_MANY
    assert manifest.fingerprint(Path("/dev/null")) is None


# --- values beyond what the code can hold ---------------------------------------------------


@pytest.mark.parametrize("value", ["inf", "nan", "1e300", "0", "-1", "1e-300"])
def test_download_timeouts_out_of_range_are_refused_by_the_parser(tmp_path, value):
    r = rec(tmp_path, "download", "--dataset", "ml-100k", f"--timeout={value}")
    assert "--timeout" in one_line_error(r, 2) and "0.1 to 3600" in r.stderr


@pytest.mark.parametrize("args,message", [
    (["--retries", "11"], "--retries"),
    (["--dataset", "synthetic", "--users", "200001"], "--users"),
    (["--dataset", "synthetic", "--users", "100000", "--movies", "100000"],
     "at most 1,000,000,000 user-movie pairs"),
    (["--dataset", "synthetic", "--users", "100", "--movies", "20", "--ratings", "1001"],
     "at most half of all user-movie pairs (1,000"),
])
def test_download_sizes_beyond_the_limits_are_refused(tmp_path, args, message):
    assert message in one_line_error(rec(tmp_path, "download", *args), 2)
    assert not (tmp_path / "data" / "synthetic").exists()


@pytest.mark.parametrize("args,message", [
    (["--hash-size", str(2 ** 31)], "'--hash-size': Input should be less than or equal to 16777216"),
    (["--hash-size", str(2 ** 24)], "--hash-size x --embedding-size must be at most 67,108,864"),
])
def test_ctr_hash_sizes_beyond_int32_and_memory_are_refused(tmp_path, args, message):
    criteo = tmp_path / "train.txt"
    criteo.write_text("1\t" + "\t" * 38 + "\n")
    assert message in one_line_error(rec(tmp_path, "ctr-train", "--input", str(criteo), *args), 2)


def test_a_5000_digit_id_is_unknown_in_one_short_line(world):
    huge = "9" * 5000
    (world / "rated.txt").write_text(f"{huge}\t5\n")
    for args, message in ((["recommend", huge], "unknown user id 9999"),
                          (["similar", huge], "unknown movie id 9999"),
                          (["recommend", "--rated", str(world / "rated.txt")],
                           f"{world / 'rated.txt'}:1: unknown movie id 9999"),
                          (["recommend", "x" + huge], "not a user id: 'x999")):
        line = one_line_error(rec(world, *args), 2)
        assert line.startswith(f"error: {message}") and "(5,00" in line and len(line) < 250
    line = one_line_error(rec(world, "ctr-predict", "-", input=f"1 1\n{huge} 1\n"), 2)
    assert line.startswith("error: stdin:2: unknown user id 9999") and len(line) < 200
    assert rec(world, "recommend", "0001", "--format", "json").exit_code == 0  # still user 1


def test_the_synthetic_generator_scores_a_block_of_users_at_a_time(tmp_path, monkeypatch):
    spec = synthetic.SyntheticSpec(users=2000, movies=2000, ratings=10_000, seed=3)
    monkeypatch.setattr(synthetic, "BLOCK_PAIRS", 2 ** 18)  # 131 users of 2000 at a time
    tracemalloc.start()
    synthetic.generate(tmp_path / "blocks", spec)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 24 << 20  # one users x movies matrix of float64 alone is 32 MB
    monkeypatch.setattr(synthetic, "BLOCK_PAIRS", 1)  # one user at a time: the same data
    synthetic.generate(tmp_path / "rows", spec)
    assert snapshot(tmp_path / "rows") == snapshot(tmp_path / "blocks")


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB tmpfs (root only; skipped where mounting is not allowed)."""
    import subprocess

    mount = tmp_path / "tiny"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_while_saving_an_array_names_the_file(tiny_disk):
    """numpy writes a real file with tofile, which reports a full disk as "100000 requested
    and 8176 written" with no errno: save_npy goes through write(), which says ENOSPC."""
    import numpy as np

    from rec.storage.atomic import save_npy
    from rec.errors import environment_error

    target = tiny_disk / "rating_users.npy"
    with pytest.raises(OSError) as caught:
        save_npy(target, np.arange(100_000))
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert "No space left on device" in str(environment_error(caught.value))
    assert list(tiny_disk.iterdir()) == []
