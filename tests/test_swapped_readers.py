"""Readers of a folder a writer swaps in whole while they read it (readers take no lock):
they get the whole old folder or the whole new one, never a mixture, never an error
(rec.storage.snapshot). The swap is made to happen between two of the reader's file reads."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from rec.storage import atomic, snapshot
from rec.datasets.contract import is_dataset, load_dataset
from rec.datasets.movielens import parse_folder
from rec.datasets.synthetic import SyntheticSpec, generate
from rec.errors import RecError, UsageError
from rec.storage.manifest import fingerprint
from rec.paths import Paths
from rec.datasets.build import build, write_dataset
from rec.twotower.features import load_features, save_features
from rec.twotower.foldin import FOLD_IN


def swap_in(target: Path, source: Path) -> None:
    """What a writer does: a complete copy of `source` swapped in for `target`."""
    with atomic.atomic_dir(target) as tmp:
        for path in source.iterdir():
            shutil.copy(path, tmp / path.name)


def swap_during(monkeypatch, cls, method: str, after: int, swap) -> list:
    """Run `swap` once, right after the `after`-th call of cls.method (a reader's file read)."""
    real, calls = getattr(cls, method), []

    def reading(self, *args, **kwargs):
        result = real(self, *args, **kwargs)
        calls.append(args[0])
        if len(calls) == after:
            swap()
        return result

    monkeypatch.setattr(cls, method, reading)
    return calls


@pytest.fixture
def runs(tmp_path):
    """Two complete feature folders of different runs (A and B), A in output/features."""
    rng = np.random.default_rng(0)
    found = {}
    for run in "AB":
        folder = tmp_path / run
        users, movies = rng.normal(size=(5, 3)), rng.normal(size=(4, 3))
        save_features(folder, list(range(5)), users, list(range(4)), movies,
                      {"match": "dot", "scale": 1.0}, extra={FOLD_IN: f"run {run}".encode()})
        found[run] = load_features(folder)
    shutil.copytree(tmp_path / "A", tmp_path / "features")
    return tmp_path, found


def assert_one_run(features, expected) -> None:
    assert np.array_equal(features.users, expected.users)
    assert np.array_equal(features.movies, expected.movies)
    assert features.scoring == expected.scoring
    assert features.extra == expected.extra


@pytest.mark.parametrize("after", [1, 2, 3, 4])
def test_features_swapped_mid_read_are_the_new_run_whole(runs, monkeypatch, after):
    """The old folder is removed after the swap: its next file is gone, so the whole read
    starts again on the new folder (the adversarial run's mixtures and missing files)."""
    root, found = runs
    calls = swap_during(monkeypatch, snapshot.Snapshot, "read_bytes", after,
                        lambda: swap_in(root / "features", root / "B"))
    assert_one_run(load_features(root / "features"), found["B"])
    assert len(calls) > after  # the swap did fall inside the read


@pytest.mark.parametrize("after", [1, 2, 3])
def test_features_swapped_mid_read_with_the_old_folder_still_there_are_the_old_run(
        runs, monkeypatch, after):
    """Every file comes through the directory opened first: the old run, whole, as long as
    its folder exists (renamed aside), never the new folder's files beside it."""
    root, found = runs

    def swap_keeping_old():
        os.rename(root / "features", root / ".features.old.1")
        shutil.copytree(root / "B", root / "features")

    swap_during(monkeypatch, snapshot.Snapshot, "read_bytes", after, swap_keeping_old)
    assert_one_run(load_features(root / "features"), found["A"])


def test_the_fold_in_file_is_the_one_read_with_the_vectors(runs):
    root, found = runs
    features = load_features(root / "features")
    swap_in(root / "features", root / "B")
    assert features.extra[FOLD_IN] == b"run A"  # what recommend --rated folds in from


def test_a_folder_missing_mid_swap_is_read_once_the_swap_ends(runs, monkeypatch):
    """Between a swap's two renames the name holds no folder: the reader waits for it."""
    root, found = runs
    os.rename(root / "features", root / ".features.old.1")
    shutil.copytree(root / "B", root / ".features.new.2")
    pauses = []

    def finish_swap(seconds):
        pauses.append(seconds)
        os.rename(root / ".features.new.2", root / "features")

    monkeypatch.setattr(snapshot.time, "sleep", finish_swap)
    assert_one_run(load_features(root / "features"), found["B"])
    assert len(pauses) == 1


def test_a_folder_mixed_by_hand_is_refused_at_once(runs, monkeypatch):
    root, _ = runs
    shutil.copy(root / "B" / "usr_feat.npy", root / "features" / "usr_feat.npy")
    monkeypatch.setattr(snapshot.time, "sleep", lambda s: pytest.fail("retried"))
    with pytest.raises(UsageError, match=r"does not hold one complete run \(usr_feat.npy is "
                                         r"not the one written with the rest\)"):
        load_features(root / "features")


def test_a_folder_missing_for_good_is_the_usual_error_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(snapshot.time, "sleep", lambda s: pytest.fail("retried"))
    with pytest.raises(UsageError, match="missing .*features \\(the saved vectors\\): run "
                                         ".*`rec save-features` first"):
        load_features(tmp_path / "features")


def test_a_folder_swapped_at_every_try_ends_in_one_line(runs, monkeypatch):
    root, _ = runs
    monkeypatch.setattr(snapshot.time, "sleep", lambda s: None)

    def always_swapped(snap):
        swap_in(root / "features", root / ("B" if snap.identity else "A"))
        raise FileNotFoundError(2, "No such file or directory", str(snap.path / "x"))

    with pytest.raises(RecError, match=r"features was replaced 10 times while being read "
                                       r"\(a writing command is running\): try again"):
        snapshot.read(root / "features", always_swapped)


def make_dataset(root: Path, seed: int) -> Path:
    paths = Paths(root / "data", root / "output")
    generate(paths.raw("synthetic"), SyntheticSpec(users=40, movies=30, ratings=500, seed=seed))
    arrays, vocab, _ = build(parse_folder(paths.raw("synthetic")), "synthetic", "random", 0.2,
                             seed)
    write_dataset(paths.dataset_dir, arrays, vocab)
    return paths.dataset_dir


@pytest.mark.parametrize("mmap", [False, True])
@pytest.mark.parametrize("after", [1, 3])
def test_a_dataset_swapped_mid_read_is_one_preprocess_run(tmp_path, monkeypatch, mmap, after):
    a, b = make_dataset(tmp_path / "A", 1), make_dataset(tmp_path / "B", 2)
    paths = Paths(tmp_path / "data", tmp_path / "output")
    shutil.copytree(a, paths.dataset_dir)
    expected = load_dataset(Paths(tmp_path / "B" / "data", tmp_path / "B" / "output"))
    swap_during(monkeypatch, snapshot.Snapshot, "open", after,
                lambda: swap_in(paths.dataset_dir, b))
    ds = load_dataset(paths, mmap=mmap)
    for name in ("users", "movie_genres", "rating_users", "rating_values", "split"):
        assert np.array_equal(getattr(ds, name), getattr(expected, name))
    assert ds.vocab == expected.vocab
    identity = f"{fingerprint(b / 'vocab.json')}-{fingerprint(b / 'split.npy')}"
    assert is_dataset(identity, paths, ds)


# --- any sealed folder (rec.storage.unit: the models too) -------------------------------------


def sealed(folder: Path, run: str) -> None:
    from rec.storage import unit

    with unit.sealed_dir(folder) as tmp:
        (tmp / "model.pdparams").write_bytes(f"weights of {run}".encode())
        (tmp / "config.json").write_text(f'{{"run": "{run}"}}')


def read_model(folder: Path) -> tuple[bytes, bytes]:
    from rec.storage import unit

    return unit.read(folder, "rec train", lambda s: (s.read_bytes("config.json"),
                                                      s.read_bytes("model.pdparams")))


def test_a_sealed_folder_swapped_mid_read_is_one_run_and_a_mixture_is_refused(tmp_path,
                                                                              monkeypatch):
    sealed(tmp_path / "B", "B")
    sealed(tmp_path / "best", "A")
    assert read_model(tmp_path / "best") == (b'{"run": "A"}', b"weights of A")
    with monkeypatch.context() as m:  # B swapped in between the config and the weights
        swap_during(m, snapshot.Snapshot, "read_bytes", 1,
                    lambda: swap_in(tmp_path / "best", tmp_path / "B"))
        assert read_model(tmp_path / "best") == (b'{"run": "B"}', b"weights of B")
    sealed(tmp_path / "best", "A")
    shutil.copy(tmp_path / "B" / "model.pdparams", tmp_path / "best" / "model.pdparams")
    with pytest.raises(UsageError, match=r"best does not hold one complete run \(model.pdparams"
                                         r" is not the one written with the rest\): run `rec "
                                         r"train` again"):
        read_model(tmp_path / "best")
    (tmp_path / "best" / "unit.json").unlink()  # as an older rec wrote its models
    with pytest.raises(UsageError, match=r"\(no unit.json\): run `rec train` again"):
        read_model(tmp_path / "best")
