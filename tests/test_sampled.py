"""The large-catalogue path of the default model (rec.twotower.sampled), forced on the small
synthetic world: a sampled softmax with a log-Q correction over the batch's movies and a
few popularity-drawn negatives. It learns the planted tastes (beats popularity), a resumed
run retraces an uninterrupted one, and fold-in still gives back the saved vectors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import rec
from test_foldin import assert_fold_in_gives_saved_vectors
from test_train import prepared, world  # noqa: F401  (the synthetic world, preprocessed)


@pytest.fixture
def forced(monkeypatch):
    """The sampled path on a 400-movie catalogue, with 64 negatives a step; counts its steps."""
    from rec.twotower import sampled

    monkeypatch.setattr(sampled, "SAMPLED_ABOVE", 0)
    monkeypatch.setattr(sampled, "NEGATIVES", 64)
    calls = {"steps": 0, "narrowest": 1 << 30}
    real = sampled.column_inputs

    def counting(demographics, rows, columns, where, mean):
        calls["steps"] += 1
        calls["narrowest"] = min(calls["narrowest"], len(columns))
        return real(demographics, rows, columns, where, mean)

    monkeypatch.setattr(sampled, "column_inputs", counting)
    return calls


def test_sampled_softmax_learns_the_planted_tastes_and_folds_in_exactly(world, forced):
    from rec.datasets.contract import load_dataset
    from rec.paths import Paths

    for stage in (["train"], ["evaluate"], ["save-features"]):
        result = rec(world, *stage)
        assert result.exit_code == 0, result.stderr
    ds = load_dataset(Paths(world / "data", world / "output"))
    assert forced["steps"] > 0 and forced["narrowest"] < ds.n_movies  # candidates, not all
    report = json.loads((world / "output" / "model" / "eval.json").read_text())
    assert report["ndcg@10"] > 1.1 * report["baselines"]["popularity"]["ndcg@10"]
    assert report["hr@10"] >= report["baselines"]["popularity"]["hr@10"]
    # the tower reads (B, candidates) bags: still the fold-in's function of the whole bag
    assert_fold_in_gives_saved_vectors(world)


def test_sampled_resume_retraces_an_uninterrupted_run(world, tmp_path, forced):
    other = tmp_path / "other"
    shutil.copytree(world, other)
    assert rec(world, "train", "--epochs", "3").exit_code == 0
    assert rec(other, "train", "--epochs", "1").exit_code == 0
    result = rec(other, "train", "--resume", "--epochs", "3")
    assert result.exit_code == 0, result.stderr
    a = json.loads((world / "output" / "model" / "history.json").read_text())
    b = json.loads((other / "output" / "model" / "history.json").read_text())
    assert [h["epoch"] for h in b] == [1, 2, 3]
    for ha, hb in zip(a, b):
        for key in ("tune_rmse", "tune_ndcg@10", "pick_loss", "rating_loss"):
            assert abs(ha[key] - hb[key]) < 1e-6, key


def test_log_q_is_the_chance_of_being_a_candidate():
    """Q(m) = 1 - (1 - f_m)^B (1 - p_m)^S, checked against a simulation of the draws."""
    from rec.twotower.sampled import Candidates

    rng = np.random.default_rng(0)
    n_users, n_movies, b = 300, 50, 8
    bags = [rng.choice(n_movies, rng.integers(1, 10), replace=False,
                       p=np.arange(1, n_movies + 1) / np.arange(1, n_movies + 1).sum())
            for _ in range(n_users)]
    c = Candidates(np.concatenate(bags), n_users, n_movies, negatives=5)
    hits = np.zeros(n_movies)
    trials = 4000
    for _ in range(trials):
        users = rng.choice(n_users, b, replace=False)
        positives = np.concatenate([bags[u] for u in users])
        drawn, where = c.draw(rng, positives)
        assert (np.diff(drawn) > 0).all() and np.array_equal(drawn[where], positives)
        hits[drawn] += 1
    q = np.exp(c.log_q(np.arange(n_movies), b))
    np.testing.assert_allclose(hits / trials, q, atol=0.04)


def test_a_steps_candidates_and_log_q_are_the_per_step_formulas():
    """draw's C is the union of the positives and the draws, with each positive's place in
    it; log_q gathered from the cached table is the per-step formula, number for number."""
    from rec.twotower.sampled import Candidates

    rng = np.random.default_rng(1)
    c = Candidates(rng.integers(0, 200, 3000), 100, 200, negatives=30)
    positives = rng.integers(0, 200, 150).astype(np.int32)
    state = np.random.default_rng(2)
    columns, where = c.draw(state, positives)
    again = np.random.default_rng(2)
    drawn = np.minimum(np.searchsorted(c.cdf, again.random(30) * c.cdf[-1], side="right"), 199)
    assert np.array_equal(columns, np.union1d(positives, drawn))
    assert np.array_equal(where, np.searchsorted(columns, positives))
    for n_users in (128, 7, 128):
        formula = np.log(np.maximum(-np.expm1(n_users * c.log_not_user[columns] + 30 *
                                              c.log_not_drawn[columns]), 1e-30))
        assert np.array_equal(c.log_q(columns, n_users), formula.astype(np.float32))
