"""The held-out-users split (`rec preprocess --split users`) and `rec evaluate` on it.

The split holds out whole users: none of their ratings is a training rating, ~80 % of each
one's are given (the fold-in's input), the rest are to predict. Training must not depend
on any of them: shuffling the held-out users' ratings leaves every training loss of an
epoch unchanged. On the synthetic world with planted tastes the fold-in of users the model
never saw ranks better than popularity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import rec
from rec.datasets.contract import GIVEN, TRAIN, VAL
from rec.datasets.splits import GIVEN_RATIO, users_split


def arrays(root: Path) -> dict:
    folder = root / "output" / "dataset"
    return {name: np.load(folder / f"{name}.npy") for name in
            ("split", "rating_users", "rating_values")}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("users-split")
    for stage in (["download", "--dataset", "synthetic"],
                  ["preprocess", "--dataset", "synthetic", "--split", "users", "--val-ratio",
                   "0.1", "--seed", "3"]):
        result = rec(root, *stage)
        assert result.exit_code == 0, result.stderr
    return root


def test_users_split_holds_out_whole_users_with_given_and_to_predict_shares():
    users = np.random.default_rng(0).integers(0, 200, 20_000)
    split = users_split(users, 0.1, seed=5)
    assert split.dtype == np.uint8 and set(np.unique(split)) == {TRAIN, VAL, GIVEN}
    held = np.unique(users[split != TRAIN])
    assert len(held) == 20  # round(0.1 * 200)
    assert not np.isin(users[split == TRAIN], held).any()  # no training rating of theirs
    for user in held:
        mine = split[users == user]
        assert (mine != TRAIN).all()
        assert (mine == GIVEN).sum() == np.clip(round(len(mine) * GIVEN_RATIO), 1, len(mine) - 1)


def test_users_split_is_seeded_and_keeps_single_rating_users_in_training():
    users = np.r_[np.repeat(np.arange(50), 10), 50]  # user 50 has one rating
    first = users_split(users, 0.5, seed=1)
    assert np.array_equal(users_split(users, 0.5, seed=1), first)
    assert not np.array_equal(users_split(users, 0.5, seed=2), first)
    assert first[-1] == TRAIN and len(np.unique(users[first != TRAIN])) == 25


def test_preprocess_users_saves_the_split_and_names_its_codes(world):
    a = arrays(world)
    held = np.unique(a["rating_users"][a["split"] == GIVEN])
    assert len(held) == round(0.1 * len(np.unique(a["rating_users"])))
    assert not np.isin(a["rating_users"][a["split"] == TRAIN], held).any()
    assert np.array_equal(np.unique(a["rating_users"][a["split"] == VAL]), held)
    share = (a["split"] == GIVEN).sum() / (a["split"] != TRAIN).sum()
    assert abs(share - GIVEN_RATIO) < 0.01
    vocab = json.loads((world / "output" / "dataset" / "vocab.json").read_text())
    assert vocab["split"]["method"] == "users" and vocab["split"]["seed"] == 3
    assert set(vocab["split"]["codes"]) == {"0", "1", "2"}
    from rec.datasets.contract import load_dataset
    from rec.paths import Paths

    ds = load_dataset(Paths(world / "data", world / "output"))
    (tu, _, _), (vu, _, _) = ds.train_val()
    assert not np.isin(tu, ds.held_out_users()).any() and np.isin(vu, held).all()


def test_training_never_reads_held_out_users_ratings(world, tmp_path):
    """Epoch 1's losses with the held-out users' ratings shuffled among them and with
    them as they are: the same to the last digit."""
    import shutil

    other = tmp_path / "other"
    shutil.copytree(world, other)
    values = other / "output" / "dataset" / "rating_values.npy"
    a = arrays(other)
    held = np.flatnonzero(a["split"] != TRAIN)
    v = a["rating_values"].copy()
    v[held] = np.random.default_rng(0).permutation(v[held])
    v[held[:50]] = 6.0 - v[held[:50]]
    np.save(values, v)
    losses = []
    for root in (world, other):
        result = rec(root, "train", "--epochs", "1", "--format", "json")
        assert result.exit_code == 0, result.stderr
        history = json.loads((root / "output" / "model" / "history.json").read_text())
        losses.append((history[0]["pick_loss"], history[0]["rating_loss"]))
    assert losses[0] == losses[1]


def test_evaluate_on_users_split_reports_fold_in_against_baselines(world, monkeypatch):
    from test_console import recording_steps

    from rec.rank.evaluation import STEPS, USERS_STEP

    result = rec(world, "train")
    assert result.exit_code == 0, result.stderr
    called = recording_steps(monkeypatch)
    result = rec(world, "evaluate", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert called == [("plan", STEPS), ("loading the model", None),  # its progress
                      ("held-out users", {"held-out users": USERS_STEP,
                                          "recall channels and the rank stage": 20}),
                      ("recall channels and the rank stage", None)]
    report = json.loads((world / "output" / "model" / "eval.json").read_text())
    assert json.loads(result.stdout) == report
    assert report["split"] == "users" and report["held_out_users"] == 60
    for key in ("hr@10", "ndcg@10", "rmse", "mae"):
        assert 0 < report[key] < 5
    b = report["baselines"]
    for name in ("popularity", "ease"):
        assert set(b[name]) >= {"hr@10", "ndcg@10"}
    # the numpy fold-in (what recommend --rated computes) is the tower itself
    assert report["fold_in_max_abs_diff"] < 1e-4
    # planted tastes: the fold-in of unseen users beats popularity
    assert report["ndcg@10"] > 1.2 * b["popularity"]["ndcg@10"]
    assert report["hr@10"] >= b["popularity"]["hr@10"]


def test_a_users_split_too_small_to_tune_on_is_one_line(tmp_path):
    """60 users: the held-out tuning users have no liked rating to choose epochs on (train
    ended in an internal KeyError)."""
    for args in (["download", "--dataset", "synthetic", "--users", "60", "--movies", "50",
                  "--ratings", "400"], ["preprocess", "--split", "users"]):
        assert rec(tmp_path, *args).exit_code == 0
    result = rec(tmp_path, "train", "--epochs", "2")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: the tuning slice has no rating of 4 stars or more")
