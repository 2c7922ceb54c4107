"""The item-item channels' gram matrix: the sparse product (large catalogues) equals the
dense one (small ones), block by block, and a rating given twice counts once; with few users
EASE goes through their side (Woodbury) to the gram's results."""

from __future__ import annotations

import numpy as np
import pytest

from rec.rank import channels


def ratings(seed: int = 0, users: int = 300, movies: int = 120, n: int = 4000):
    rng = np.random.default_rng(seed)
    popular = rng.zipf(1.5, n) % movies  # a skewed catalogue, as MovieLens is
    return rng.integers(0, users, n), popular.astype(np.int64), movies


def by_hand(u, m, items, n_movies):
    x = np.zeros((u.max() + 1, n_movies), np.float32)
    x[u, m] = 1.0
    x = x[:, items]
    return x.T @ x


@pytest.mark.parametrize("block_bytes", [1 << 30, 8 * 120 * 7])  # one block; blocks of 7 columns
def test_the_sparse_gram_is_the_dense_one(monkeypatch, block_bytes):
    u, m, n_movies = ratings()
    items = np.flatnonzero(np.bincount(m, minlength=n_movies))[::2]  # a subset: EASE's cap
    dense = channels.gram(u, m, items, n_movies)
    monkeypatch.setattr(channels, "DENSE_GRAM_WORK", 0)
    monkeypatch.setattr(channels, "GRAM_BLOCK_BYTES", block_bytes)
    sparse = channels.gram(u, m, items, n_movies)
    assert np.array_equal(dense, by_hand(u, m, items, n_movies))
    assert np.array_equal(sparse, dense)
    assert dense.dtype == sparse.dtype == np.float32


def test_a_rating_given_twice_counts_once(monkeypatch):
    u, m, n_movies = ratings(1)
    items = np.arange(n_movies)
    twice = channels.gram(np.r_[u, u[:50]], np.r_[m, m[:50]], items, n_movies)
    assert np.array_equal(twice, channels.gram(u, m, items, n_movies))
    monkeypatch.setattr(channels, "DENSE_GRAM_WORK", 0)
    assert np.array_equal(channels.gram(np.r_[u, u[:50]], np.r_[m, m[:50]], items, n_movies),
                          twice)


@pytest.mark.parametrize("n_users", [1, 5, 200])  # numpy sums for a few users, scipy past them
def test_history_times_is_the_binary_rows_product(n_users):
    rng = np.random.default_rng(n_users)
    n_movies = 60
    items = np.sort(rng.choice(n_movies, 45, replace=False))
    rows = rng.integers(0, n_users, 8 * n_users)
    movies = rng.integers(0, n_movies, 8 * n_users)
    rows, movies = np.r_[rows, rows[:3]], np.r_[movies, movies[:3]]  # three rated twice
    matrix = rng.normal(size=(len(items), 7)).astype(np.float32)
    expected = channels.binary_rows(items, rows, movies, n_users, n_movies) @ matrix
    got = channels.history_times(items, rows, movies, n_users, n_movies, matrix)
    assert got.dtype == np.float32 and got.shape == (n_users, 7)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


class FewUsers:
    """The parts of a Dataset the item models read: 40 users, 300 movies (ml-latest-small's
    shape: far fewer users than movies), ratings skewed towards a popular head."""

    def __init__(self, seed: int = 3):
        from rec.datasets.contract import TRAIN, VAL

        rng = np.random.default_rng(seed)
        self.n_users, self.n_movies = 40, 300
        u = rng.integers(0, self.n_users, 3000)
        m = (rng.zipf(1.3, 3000) % self.n_movies).astype(np.int64)
        r = rng.integers(1, 6, 3000).astype(np.float32)
        val = rng.random(3000) < 0.15
        self._parts = {TRAIN: (u[~val], m[~val], r[~val]), VAL: (u[val], m[val], r[val])}

    def part(self, which):
        return self._parts[which]

    def known(self):
        from rec.datasets.contract import TRAIN

        return self._parts[TRAIN]


def test_few_users_fit_ease_through_their_side_as_the_gram_would(monkeypatch):
    ds = FewUsers()
    tu, tm, _ = ds.part(channels.TRAIN)
    items = channels.ease_items(tm, ds.n_movies)
    assert channels.user_side(tu, tm, items, ds.n_movies) is not None
    assert channels.user_side(tu, tm, items[:70], ds.n_movies) is None  # users > items / 2
    lambdas = (2.0, 20.0, 200.0)
    side_metrics, _ = channels.item_model_metrics(ds, lambdas)
    side_ease, _ = channels.fit_item_models(ds, 20.0, 8)
    monkeypatch.setattr(channels, "user_side", lambda *args: None)  # the gram and Cholesky
    gram_metrics, _ = channels.item_model_metrics(ds, lambdas)
    gram_ease, _ = channels.fit_item_models(ds, 20.0, 8)
    for lam in lambdas:
        for key, value in gram_metrics[lam].items():
            assert side_metrics[lam][key] == pytest.approx(value, abs=1e-6), (lam, key)
    assert np.array_equal(side_ease.items, gram_ease.items)
    np.testing.assert_allclose(side_ease.b, gram_ease.b, atol=2e-6)
