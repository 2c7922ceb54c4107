"""The tuning slice (rec.datasets.tuning): every choice is made on a slice carved from the
training ratings, so a model trained twice on the same training ratings is identical,
whatever the validation ratings say."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import rec, reseal
from rec.datasets.contract import GIVEN, TRAIN, VAL, load_dataset
from rec.datasets.tuning import slice_codes, tuning_view, uniform_hash
from rec.paths import Paths


def test_the_random_slice_is_a_function_of_each_pair_alone():
    rng = np.random.default_rng(0)
    users, movies = rng.integers(0, 500, 20_000), rng.integers(0, 900, 20_000)
    times = np.zeros(20_000, np.int64)
    codes = slice_codes(users, movies, times, "random", seed=3)
    assert abs((codes == VAL).mean() - 0.1) < 0.01
    perm = rng.permutation(20_000)[:12_000]  # other rows gone, the rest reordered
    assert np.array_equal(slice_codes(users[perm], movies[perm], times[perm], "random", 3),
                          codes[perm])
    assert not np.array_equal(slice_codes(users, movies, times, "random", 4), codes)


def test_the_time_slice_is_the_latest_training_ratings():
    times = np.arange(100)[::-1].copy()
    codes = slice_codes(np.zeros(100, int), np.arange(100), times, "time", seed=0)
    assert times[codes == VAL].min() > times[codes == TRAIN].max()
    assert (codes == VAL).sum() == 9  # after the 90 % quantile, ties kept in training


def test_the_users_slice_holds_out_whole_users_with_given_and_target_ratings():
    rng = np.random.default_rng(1)
    users, movies = rng.integers(0, 1000, 50_000), rng.integers(0, 3000, 50_000)
    codes = slice_codes(users, movies, np.zeros(50_000, np.int64), "users", seed=5)
    held = np.unique(users[codes != TRAIN])
    assert 0.07 < len(held) / 1000 < 0.13
    assert not np.isin(users[codes == TRAIN], held).any()  # whole users
    assert abs((codes[np.isin(users, held)] == GIVEN).mean() - 0.8) < 0.03


def test_uniform_hash_is_uniform_and_seeded():
    h = uniform_hash(np.arange(100_000), seed=1)
    assert 0 <= h.min() and h.max() < 1 and abs(h.mean() - 0.5) < 0.01
    assert not np.array_equal(h, uniform_hash(np.arange(100_000), seed=2))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _in_a_new_process(root: Path, *args: str) -> None:
    """Each run in its own process: paddle's global state (parameter name counters, its
    generator) makes a second run in one process start elsewhere than the first."""
    proc = subprocess.run([sys.executable, "-m", "rec", "--data-dir", str(root / "data"),
                           "--output-dir", str(root / "output"), "-q", *args],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def _train_in_a_new_process(root: Path) -> None:
    _in_a_new_process(root, "train", "--epochs", "2")


def _fit(root: Path) -> dict:
    """The whole fit's arrays: the two-tower's weights, the channels, the rank stage."""
    _train_in_a_new_process(root)
    _in_a_new_process(root, "save-features")
    _in_a_new_process(root, "ctr-train", "--data", "movielens", "--epochs", "2")
    out = root / "output"
    arrays = {"model": _digest(out / "model" / "best" / "model.pdparams")}
    for name in ("features/ease.npz", "ctr/model/weights.npz"):
        with np.load(out / name) as z:
            arrays.update({f"{name}:{k}": z[k] for k in z.files if k != "run_id"})
    return arrays


@pytest.mark.parametrize("split", ["random", "users"])
def test_a_model_does_not_change_when_only_the_validation_ratings_change(tmp_path, split):
    """Train, then change the evaluation split's ratings (other values, half of them gone)
    and train again from scratch: the same weights, the same tuning metrics."""
    root = tmp_path / "w"
    assert rec(root, "download", "--dataset", "synthetic").exit_code == 0
    assert rec(root, "preprocess", "--split", split).exit_code == 0
    _train_in_a_new_process(root)
    model, best = root / "output" / "model", root / "output" / "model" / "best"
    first = _digest(best / "model.pdparams"), json.loads((best / "metrics.json").read_text())

    ds = root / "output" / "dataset"
    split_codes = np.load(ds / "split.npy")
    val = np.flatnonzero(split_codes == VAL)
    keep = np.ones(len(split_codes), bool)
    keep[val[::2]] = False  # half of the validation ratings gone
    values = np.load(ds / "rating_values.npy")
    values[val] = 6.0 - values[val]  # the rest rated the other way round
    np.save(ds / "rating_values.npy", values)
    for name in ("rating_users", "rating_movies", "rating_values", "rating_times", "split"):
        np.save(ds / f"{name}.npy", np.load(ds / f"{name}.npy")[keep])
    reseal(ds)  # edited on purpose: a dataset of its own (rec.storage.unit)
    shutil.rmtree(model)
    _train_in_a_new_process(root)
    second = _digest(best / "model.pdparams"), json.loads((best / "metrics.json").read_text())
    assert first[0] == second[0]
    for key in ("tune_ndcg@10", "tune_hr@10", "tune_rmse", "best_epoch"):
        assert first[1][key] == second[1][key]


def test_the_whole_fit_does_not_change_when_only_the_validation_ratings_change(tmp_path):
    """train, save-features and ctr-train (the channels, λ, K, the rank stage) read the
    training ratings only: change the evaluation split, fit again, the same arrays."""
    root = tmp_path / "w"
    assert rec(root, "download", "--dataset", "synthetic", "--users", "300", "--movies",
               "200", "--ratings", "24000").exit_code == 0
    assert rec(root, "preprocess").exit_code == 0
    first = _fit(root)
    ds = root / "output" / "dataset"
    split_codes = np.load(ds / "split.npy")
    val = np.flatnonzero(split_codes == VAL)
    values = np.load(ds / "rating_values.npy")
    values[val] = 6.0 - values[val]
    np.save(ds / "rating_values.npy", values)
    for name in ("model", "features", "ctr"):
        shutil.rmtree(root / "output" / name)
    second = _fit(root)
    assert first.keys() == second.keys()
    for key in first:
        assert np.array_equal(first[key], second[key]), key


def test_a_ctr_model_on_movielens_does_not_change_when_only_the_validation_ratings_change(
        tmp_path):
    """`ctr-train --model wide_deep` keeps its best epoch and stops early on the tuning
    slice: change the evaluation split's ratings, train again, the same weights, the same
    validation figures, and fewer validation samples than the evaluation split holds."""
    root = tmp_path / "w"
    assert rec(root, "download", "--dataset", "synthetic", "--users", "300", "--movies",
               "200", "--ratings", "24000").exit_code == 0
    assert rec(root, "preprocess").exit_code == 0
    ctr = root / "output" / "ctr"

    def fit() -> tuple[dict, dict]:
        _in_a_new_process(root, "ctr-train", "--model", "wide_deep", "--epochs", "3",
                          "--negatives", "1")
        with np.load(ctr / "model" / "weights.npz") as z:
            weights = {k: z[k] for k in z.files}
        metrics = json.loads((ctr / "model" / "metrics.json").read_text())
        return weights, metrics

    first, metrics = fit()
    view = tuning_view(load_dataset(Paths(root / "data", root / "output")))
    in_slice = int((view.split == VAL).sum())  # validated on: the slice, one negative each
    assert in_slice < metrics["val_samples"] <= 2 * in_slice
    ds = root / "output" / "dataset"
    val = np.flatnonzero(np.load(ds / "split.npy") == VAL)
    values = np.load(ds / "rating_values.npy")
    values[val] = 6.0 - values[val]  # the evaluation split rated the other way round
    np.save(ds / "rating_values.npy", values)
    reseal(ds)
    shutil.rmtree(ctr)
    second, again = fit()
    assert first.keys() == second.keys()
    for key in first:
        assert np.array_equal(first[key], second[key]), key
    for key in ("auc", "logloss", "baseline_auc", "best_epoch", "val_samples"):
        assert metrics[key] == again[key], key


def test_users_kind_draws_more_lists_from_the_same_held_out_users_only(tmp_path):
    """--split users: the rank stage's extra draws move only the held-out tuning users'
    ratings between given and to-predict; the training part (what every channel was
    fitted on) is untouched."""
    from rec.rank.fit import redrawn

    root = tmp_path / "w"
    assert rec(root, "download", "--dataset", "synthetic", "--users", "300", "--movies",
               "200", "--ratings", "24000").exit_code == 0
    assert rec(root, "preprocess", "--split", "users").exit_code == 0
    view = tuning_view(load_dataset(Paths(root / "data", root / "output")))
    other = redrawn(view, 1)
    train = view.split == TRAIN
    assert np.array_equal(other.split == TRAIN, train)
    assert set(np.unique(other.split[~train])) == {VAL, GIVEN}
    changed = (other.split != view.split).mean() / (~train).mean()
    assert 0.2 < changed < 0.45  # about 2 x 0.8 x 0.2 of the held-out ratings move
    assert np.array_equal(redrawn(view, 1).split, other.split)  # seeded


def test_too_few_training_ratings_for_the_tuning_slice_say_so(tmp_path):
    """Ten ratings: preprocess splits them 9 / 1, and train's tuning slice (a tenth of the
    training ratings) is empty. It said the saved split had an empty part and to rerun
    preprocess with another --val-ratio, which no ratio fixed (an adversarial trial's find)."""
    assert rec(tmp_path, "download", "--dataset", "synthetic", "--users", "2", "--movies",
               "20", "--ratings", "10").exit_code == 0
    assert rec(tmp_path, "preprocess").exit_code == 0
    result = rec(tmp_path, "train")
    assert result.exit_code == 2 and result.stderr == (
        "error: too few training ratings for the tuning slice every choice is made on (a "
        "tenth of them) and the rest: use a larger dataset, or a smaller --val-ratio in `rec "
        "preprocess`\n")
