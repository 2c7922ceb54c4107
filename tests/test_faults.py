"""Faults injected on purpose: a full disk at each write of save-features and preprocess,
two writers at once, symlinked folders, a mixture of feature files, hostile values. After each, the artifacts
are the old ones or the new ones, whole, and the next command a user runs uses them."""

from __future__ import annotations

import fcntl
import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from rec.storage import lock
from rec.jsontext import dumps

from conftest import (SMALL, SMALL_WORLD, copy_world, fail_at, no_leftovers, one_line_error, rec,
                      run_stages, snapshot)



@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A small synthetic world: preprocessed, trained one epoch, features saved."""
    return run_stages(tmp_path_factory.mktemp("faults"), *SMALL_WORLD)


@pytest.fixture
def world(trained, tmp_path) -> Path:
    return copy_world(trained, tmp_path)


# --- a full disk ------------------------------------------------------------------------------


@pytest.mark.parametrize("name,n", [("replace", 1), ("replace", 2), ("replace", 3),
                                    ("replace", 4), ("rename", 1), ("rename", 2)])
def test_full_disk_during_save_features_keeps_the_previous_features(world, monkeypatch, name, n):
    features = world / "output" / "features"
    before, shown = snapshot(features), rec(world, "recommend", "1", "--format", "json").stdout
    fail_at(monkeypatch, name, n)
    assert "No space left" in one_line_error(rec(world, "save-features"), 1)
    monkeypatch.undo()
    assert snapshot(features) == before
    no_leftovers(world / "output")
    assert rec(world, "recommend", "1", "--format", "json").stdout == shown


@pytest.mark.parametrize("name,n", [("replace", 1), ("replace", 5), ("replace", 9),
                                    ("rename", 1), ("rename", 2)])
def test_full_disk_during_preprocess_keeps_the_previous_dataset(world, monkeypatch, name, n):
    dataset = world / "output" / "dataset"
    before = snapshot(dataset)
    fail_at(monkeypatch, name, n)
    one_line_error(rec(world, "preprocess", "--seed", "7"), 1)
    monkeypatch.undo()
    assert snapshot(dataset) == before
    no_leftovers(world / "output")
    assert rec(world, "recommend", "1").exit_code == 0


# --- one writer per folder --------------------------------------------------------------------


def hold_lock(folder: Path, note: str) -> int:
    fd = os.open(folder / lock.LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, note.encode())
    return fd


def test_a_second_writer_stops_at_once_and_readers_do_not_wait(world):
    out = world / "output"
    before = snapshot(out / "dataset")
    fd = hold_lock(out, "rec train (pid 4242)\n")
    try:
        for stage in (["preprocess"], ["save-features"], ["evaluate"], ["train", "--epochs", "1"],
                      ["ctr-train", "--model", "wide_deep", "--epochs", "1"], ["download", "--dataset", "synthetic"]):
            message = one_line_error(rec(world, *stage), 2)
            assert "in use by `rec train (pid 4242)`" in message, (stage, message)
        for reader in (["recommend", "1"], ["similar", "1"], ["status"]):
            assert rec(world, *reader).exit_code == 0, reader
    finally:
        os.close(fd)  # as when the holder is killed: the file stays, the lock goes
    assert snapshot(out / "dataset") == before
    assert (out / lock.LOCK).exists()
    assert rec(world, "preprocess").exit_code == 0  # a stale lock file does not block
    assert not (out / lock.LOCK).exists()


def test_data_parallel_workers_do_not_take_the_launchers_lock(tmp_path, monkeypatch):
    with lock.hold(tmp_path, "rec train --nproc 2"):
        with pytest.raises(lock.Busy):
            with lock.hold(tmp_path):
                pass
        monkeypatch.setenv("PADDLE_TRAINERS_NUM", "2")
        with lock.hold(tmp_path):  # a worker: no wait, no error
            pass


# --- symlinked folders ----------------------------------------------------------------------


def test_a_symlinked_dataset_folder_is_written_through(world, tmp_path):
    output = world / "output"
    big = tmp_path / "bigdisk"
    big.mkdir()
    shutil.move(output / "dataset", big / "dataset")
    (output / "dataset").symlink_to(big / "dataset")
    before = snapshot(big / "dataset")
    result = rec(world, "preprocess", "--seed", "7")
    assert result.exit_code == 0, result.stderr
    assert (output / "dataset").is_symlink() and snapshot(big / "dataset") != before
    no_leftovers(world / "output")
    no_leftovers(big)
    assert rec(world, "status").exit_code == 0
    data = world / "data" / "synthetic"  # rec download writes through a link too
    shutil.move(data, big / "synthetic")
    data.symlink_to(big / "synthetic")
    assert rec(world, "download", "--dataset", "synthetic", *SMALL, "--seed", "3").exit_code == 0
    assert data.is_symlink() and json.loads((big / "synthetic" / ".rec-verified.json")
                                            .read_text())["synthetic"]["seed"] == 3
    assert sorted(p.name for p in big.iterdir()) == ["dataset", "synthetic"]  # no leftovers


def test_a_symlinked_output_folder_is_written_through(world, tmp_path):
    shutil.move(world / "output", tmp_path / "elsewhere")
    (world / "output").symlink_to(tmp_path / "elsewhere")
    for stage in (["preprocess"], ["save-features"], ["recommend", "1"]):
        result = rec(world, *stage)
        assert result.exit_code == 0, (stage, result.stderr)
    assert (world / "output").is_symlink() and (tmp_path / "elsewhere" / "dataset").is_dir()
    no_leftovers(tmp_path / "elsewhere")


def test_a_symlink_into_a_missing_folder_is_refused_in_one_line(world, tmp_path):
    output = world / "output"
    shutil.rmtree(output / "dataset")
    (output / "dataset").symlink_to(tmp_path / "unmounted" / "dataset")
    result = rec(world, "preprocess")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"error: {output / 'dataset'} is a symlink to {tmp_path / 'unmounted' / 'dataset'}, "
        f"in a folder that does not exist: create {tmp_path / 'unmounted'} or remove the link")
    assert (output / "dataset").is_symlink()
    (world / "out2").symlink_to(tmp_path / "nowhere")
    result = rec(world, "preprocess", out="out2")
    assert result.exit_code == 1 and "is a symlink to" in result.stderr
    assert "which does not exist" in result.stderr.splitlines()[-1]


# --- units ------------------------------------------------------------------------------------


def test_a_mixture_of_feature_files_is_refused(world):
    features = world / "output" / "features"
    users = pickle.loads((features / "usr_feat.pkl").read_bytes())
    (features / "usr_feat.pkl").write_bytes(pickle.dumps({k: v * 2 for k, v in users.items()}))
    message = one_line_error(rec(world, "recommend", "1"), 2)
    assert "usr_feat.pkl" in message and "run `rec save-features` again" in message
    assert rec(world, "save-features").exit_code == 0
    # scoring.json by hand: what serving does changes with it, so it is hashed with the rest
    scoring = json.loads((features / "scoring.json").read_text())
    (features / "scoring.json").write_text(json.dumps({**scoring, "split": 5}))
    for command in (["similar", "1"], ["recommend", "1"]):
        message = one_line_error(rec(world, *command), 2)
        assert "scoring.json is not the one written with the rest" in message
        assert "run `rec save-features` again" in message


def test_a_config_beside_weights_of_another_run_is_refused(world):
    best = world / "output" / "model" / "best"
    config = json.loads((best / "config.json").read_text())
    (best / "config.json").write_text(json.dumps({**config, "rec_version": "another"}))
    for stage in (["save-features"], ["evaluate"]):
        message = one_line_error(rec(world, *stage), 2)
        assert "config.json is not the one written with the rest" in message
        assert "run `rec train` again" in message


def test_truncated_weights_are_one_clean_line_naming_the_stage_to_rerun(world):
    weights = world / "output" / "model" / "best" / "model.pdparams"
    weights.write_bytes(weights.read_bytes()[:200])
    for stage in ("save-features", "export"):
        message = one_line_error(rec(world, stage), 1)
        assert message.startswith(f"error: {weights} is damaged (") and "0x" not in message
        assert message.endswith("): run `rec train` again")


def test_a_truncated_feature_matrix_names_the_stage_to_rerun(world):
    matrix = world / "output" / "features" / "usr_feat.npy"
    matrix.write_bytes(matrix.read_bytes()[:100])
    for command in (["recommend", "1"], ["similar", "1"], ["evaluate"]):
        message = one_line_error(rec(world, *command), 1)
        assert message.startswith(f"error: {matrix}: not a valid matrix (")
        assert message.endswith("): run `rec save-features` again")


def test_a_model_in_the_layout_of_an_older_rec_names_the_stage_to_rerun(world):
    model = world / "output" / "model"
    for path in (model / "best").iterdir():  # its files beside the checkpoint, no best/
        path.rename(model / path.name)
    (model / "best").rmdir()
    message = one_line_error(rec(world, "save-features"), 2)
    assert f"missing {model / 'best' / 'config.json'}: run `rec train` first" in message


# --- hostile values ---------------------------------------------------------------------------


def test_an_empty_ratings_file_keeps_the_previous_dataset(world):
    before = snapshot(world / "output" / "dataset")
    (world / "data" / "synthetic" / "ratings.dat").write_text("")
    assert "no ratings" in one_line_error(rec(world, "preprocess"), 2)
    assert snapshot(world / "output" / "dataset") == before


def test_time_split_without_validation_is_refused_and_duplicates_keep_the_latest(world):
    ratings = world / "data" / "synthetic" / "ratings.dat"
    ratings.write_text("1::1::3::100\n2::2::4::100\n")
    assert "single rating" in one_line_error(rec(world, "preprocess", "--split", "time-user"), 2)
    ratings.write_text("1::1::1::200\n1::1::5::300\n1::2::4::100\n1::1::2::250\n"
                       "2::2::4::100\n2::3::2::110\n")
    result = rec(world, "preprocess", "--split", "time-user", "--format", "json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["duplicate_ratings"] == 2 and summary["ratings"] == 4
    values = np.load(world / "output" / "dataset" / "rating_values.npy")
    assert sorted(values.tolist()) == [2.0, 4.0, 4.0, 5.0]  # user 1, movie 1: the latest, 5


@pytest.mark.parametrize("file,line", [("users.dat", 1), ("ratings.dat", 1), ("movies.dat", 1)])
def test_ids_beyond_int64_name_their_line_and_keep_the_dataset(world, file, line):
    path = world / "data" / "synthetic" / file
    rows = path.read_text(encoding="latin-1").splitlines(keepends=True)
    rows[line - 1] = "9223372036854775808" + rows[line - 1][rows[line - 1].index("::"):]
    path.write_text("".join(rows), encoding="latin-1")
    before = snapshot(world / "output" / "dataset")
    message = one_line_error(rec(world, "preprocess"), 1)
    assert f"{file}:{line}: malformed line '9223372036854775808::" in message
    assert snapshot(world / "output" / "dataset") == before


@pytest.mark.parametrize("stars, negatives, kind", [(5.0, "0", "positive (1)"),
                                                     (1.0, "0", "negative (0)"),
                                                     (1.0, "4", "negative (0)")])
def test_ctr_train_refuses_one_class_data_before_training(world, stars, negatives, kind):
    """Every rating liked is one class for the "will like" model (--negatives 0), not for
    "will watch and like" (unrated movies are its label 0); none liked is one class for both."""
    path = world / "output" / "dataset" / "rating_values.npy"
    np.save(path, np.full_like(np.load(path), stars))
    message = one_line_error(rec(world, "ctr-train", "--model", "wide_deep", "--epochs", "1", "--negatives", negatives), 2)
    assert f"only {kind} labels" in message
    assert not (world / "output" / "ctr" / "model").exists()


def test_no_json_holds_nan_or_infinity():
    text = dumps({"auc": float("nan"), "loss": np.float32("inf"), "rows": [1.5, -np.inf]})
    assert json.loads(text) == {"auc": None, "loss": None, "rows": [1.5, None]}


@pytest.mark.parametrize("stage", [["download", "--dataset", "synthetic"], ["preprocess"],
                                   ["train"], ["evaluate"], ["ctr-train"],
                                   ["recommend", "1", "--explore", "1"]])
@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_seeds_out_of_range_are_refused_by_the_parser(tmp_path, stage, seed):
    assert "--seed" in one_line_error(rec(tmp_path, *stage, "--seed", seed), 2)


def test_top_and_candidates_are_capped_at_the_catalogue(world):
    n_movies = len(json.loads((world / "output" / "dataset" / "vocab.json").read_text())
                   ["movie_ids"])
    result = rec(world, "recommend", "1", "--top", str(10**9), "--include-seen", "--format",
                 "json")
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == n_movies
    similar = rec(world, "similar", "1", "--top", str(10**9), "--format", "json")
    assert similar.exit_code == 0 and len(similar.stdout.splitlines()) == n_movies - 1


def test_a_symlinked_lock_file_is_refused_and_its_target_untouched(world, tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("precious\n")
    (world / "output" / ".lock").symlink_to(precious)
    assert "is a symbolic link" in one_line_error(rec(world, "evaluate"), 2)
    assert precious.read_text() == "precious\n" and (world / "output" / ".lock").is_symlink()


def test_a_data_folder_left_halfway_by_a_killed_download_is_restored_by_preprocess(world):
    """Killed between the renames of `download --force`'s swap: data/synthetic is missing, its
    new copy (complete) and the previous one lie beside it. preprocess puts the new one back."""
    data = world / "data"
    before = snapshot(data / "synthetic")
    shutil.copytree(data / "synthetic", data / ".synthetic.old.1")
    (data / "synthetic").rename(data / ".synthetic.new.2")
    (data / ".synthetic.x1y2.tmp").mkdir()  # a third run's, killed while building
    result = rec(world, "preprocess")
    assert result.exit_code == 0, result.stderr
    assert snapshot(data / "synthetic") == before
    assert sorted(p.name for p in data.iterdir() if p.name.startswith(".synthetic")) == []


# --- flushed before published -----------------------------------------------------------------


@pytest.mark.parametrize("stage", [["preprocess"], ["train", "--epochs", "1"], ["save-features"],
                                   ["evaluate"]])
def test_every_file_is_flushed_to_disk_before_the_rename_that_publishes_it(world, monkeypatch,
                                                                           stage):
    """fsync of each file's content before its rename into place, and of the folder after:
    a power cut leaves the old file or the new one, never an empty "complete" one."""
    synced, unsynced = set(), []
    real_fsync, real_replace, real_rename = os.fsync, os.replace, os.rename

    def fsync(fd):
        synced.add(os.path.realpath(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    def published(src, dst, *args, real, **kwargs):
        src_real = os.path.realpath(src)
        if ".old." in os.path.basename(dst) or ".kept" in os.path.basename(dst):
            return real(src, dst, *args, **kwargs)  # the previous copy moving aside
        files = [src_real] if os.path.isfile(src_real) else [
            os.path.join(d, f) for d, _, fs in os.walk(src_real) for f in fs] + [src_real]
        unsynced.extend(f for f in files if f not in synced and "manifest" not in f
                        and not f.endswith(".lock"))
        out = real(src, dst, *args, **kwargs)
        dst_real = os.path.realpath(dst)
        for f in [f for f in synced if f == src_real or f.startswith(src_real + os.sep)]:
            synced.add(dst_real + f[len(src_real):])  # flushed content keeps its new name
        return out

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", lambda s, d, *a, **k: published(s, d, *a, real=real_replace, **k))
    monkeypatch.setattr(os, "rename", lambda s, d, *a, **k: published(s, d, *a, real=real_rename, **k))
    result = rec(world, *stage)
    monkeypatch.undo()
    assert result.exit_code == 0, result.stderr
    assert unsynced == []
