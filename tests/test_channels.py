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
