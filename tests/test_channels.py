"""The item-item channels' gram matrix: the sparse product (large catalogues) equals the
dense one (small ones), block by block, and a rating given twice counts once."""

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
