"""The faster serving paths give the plain forms' numbers: to the bit where the module says
so (rec.metrics.rows_times and ColumnBlocks, smallest_k, rec.ease.upper_gram, row_sums,
ranking_metrics' threads; the rank features' moments, finite_max, select, distinct_pairs,
genre profile and rows written by blocks; rec.rank.ordering's sorts; the
channels' spread_columns and EASE's B read as a view of its file), within float32 rounding
where it says that (dual_ease_scorer, the rank network's blocks on another BLAS). Small
generated data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import csr_matrix

from rec.ease import ease_from_gram, ease_weights, upper_gram
from rec.metrics import dual_ease_scorer, ranking_metrics, row_sums, rows_times, smallest_k


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and \
        np.array_equal(np.ascontiguousarray(a).view(np.uint8),
                       np.ascontiguousarray(b).view(np.uint8))


def binary(rng, users: int, movies: int, ratings: int) -> np.ndarray:
    x = np.zeros((users, movies), np.float32)
    x[rng.integers(0, users, ratings), rng.integers(0, movies, ratings)] = 1
    return x


def test_rows_times_is_scipys_product_to_the_bit():
    rng = np.random.default_rng(0)
    x = csr_matrix(binary(rng, 300, 2000, 20_000))
    matrix = rng.standard_normal((2000, 700)).astype(np.float32)  # 524 columns a block
    out = rows_times(x, matrix)
    assert same_bits(out, np.asarray(x @ matrix, np.float32))
    assert same_bits(rows_times(x, matrix[:, :5]), np.asarray(x @ matrix[:, :5]))


def test_smallest_k_is_argpartition_to_the_index():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 50, (300, 400)).astype(np.float32)  # many ties
    a[rng.random(a.shape) < 0.1] = -np.inf
    for k in (1, 10, 100):
        assert np.array_equal(smallest_k(a, k), np.argpartition(a, k - 1, axis=1)[:, :k])
        assert np.array_equal(smallest_k(a, k, negated=True),
                              np.argpartition(-a, k - 1, axis=1)[:, :k])


def test_dense_top_is_whole_rows_ranking_to_the_index():
    """dense_top ranks the best groups of columns alone, and a row whole where ties or too
    few finite scores could make that differ: the indices of ranking every row whole."""
    from rec.shortlists import GROUP, dense_top, full_top

    rng = np.random.default_rng(5)
    for b, m, kind in ((200, 3883, "continuous"), (150, 2000, "ties"), (100, 700, "-inf"),
                       (60, GROUP * 11 + 3, "continuous"), (40, GROUP * 10, "continuous"),
                       (30, 50, "continuous"), (64, 1000, "nan")):
        scores = (rng.standard_normal(m) + rng.standard_normal((b, m))).astype(np.float32)
        if kind == "ties":
            scores = np.round(scores, 1)
            scores[:10] = np.round(scores[:10])  # rows with ties among the best
        elif kind == "-inf":
            scores[rng.random(scores.shape) < 0.9] = -np.inf
            scores[:5, 4:] = -np.inf  # fewer than k finite scores
        elif kind == "nan":
            scores[rng.random(scores.shape) < 0.01] = np.nan
        seen = rng.random((b, m)) < 0.05
        seen[0, :] = True  # a row that saw everything
        rows, cols = np.nonzero(seen)
        for k in (1, 3, 10):
            worst = -scores
            worst[rows, cols] = np.inf
            assert np.array_equal(dense_top(scores, rows, cols, k), full_top(worst, k)), (kind, k)
    # the grouped path is taken (and exact) on a plain continuous catalogue
    scores = rng.standard_normal((50, 3883)).astype(np.float64)
    assert np.array_equal(dense_top(scores, np.zeros(0, int), np.zeros(0, int), 10),
                          np.argsort(-scores, axis=1)[:, :10])


def test_upper_gram_gives_the_same_ease_as_the_full_gram():
    rng = np.random.default_rng(2)
    x = binary(rng, 500, 300, 12_000)
    plain = ease_from_gram(x.T @ x, 300.0)
    assert same_bits(ease_weights(x, 300.0), plain)
    g = upper_gram(x)
    assert np.array_equal(np.triu(g), np.triu(x.T @ x))


def test_the_sparse_gram_and_the_cholesky_without_the_gil_give_the_wrappers_bits(monkeypatch):
    import rec.ease as ease

    rng = np.random.default_rng(5)
    users, movies = rng.integers(0, 400, 9000), rng.integers(0, 250, 9000)  # pairs twice, too
    x = np.zeros((400, 250), np.float32)
    x[users, movies] = 1.0
    g = ease.sparse_gram(ease.binary_csr(users, movies, x.shape))
    assert g.dtype == np.float32 and same_bits(g, x.T @ x)
    assert ease._routines(), "scipy's Cython LAPACK capsules are readable here"
    through_ctypes = ease_from_gram(g, 200.0)
    monkeypatch.setattr(ease, "_ROUTINES", {})  # scipy.linalg.lapack's wrappers
    assert same_bits(through_ctypes, ease_from_gram(g, 200.0))
    monkeypatch.undo()
    singular = np.zeros((3, 3), np.float32, order="F")
    with pytest.raises(ValueError, match="not positive definite"):
        ease.cholesky_inverse(singular)


def test_user_side_ease_is_the_cholesky_inverses_matrix_and_scores():
    from rec.ease import UserSideEase

    rng = np.random.default_rng(6)
    x = binary(rng, 90, 400, 3000)
    x[:, :30] = np.maximum(x[:, :30], rng.random((90, 30)) < 0.4)  # popular items: structure
    side = UserSideEase(x)
    for lam in (5.0, 200.0):
        primal = ease_from_gram(x.T @ x, lam)
        b = side.weights(lam, block=64)  # several blocks of columns
        assert b.dtype == np.float32 and b.flags.c_contiguous and not np.diag(b).any()
        np.testing.assert_allclose(b, primal, atol=2e-6)
        np.testing.assert_allclose(side.scores(x[:40], lam), x[:40] @ primal, atol=2e-5)


def test_log_like_is_log_sigmoid_within_float32_rounding():
    from rec.scoring import log_like

    like = {"a": 2.44, "b": -8.42}
    stars = np.concatenate([np.linspace(-30, 30, 20_001), [0.0, 3.45, 1e4, -1e4]])
    z = like["a"] * np.asarray(stars.astype(np.float32), np.float64) + like["b"]
    exact = -np.logaddexp(0.0, -z)  # log sigmoid(z) in float64
    got = log_like(stars.astype(np.float32), like)
    assert got.dtype == np.float32 and np.isfinite(got).all()
    np.testing.assert_allclose(got, exact, rtol=2e-6, atol=2e-7)
    assert log_like(np.float32(4.0), like).shape == ()  # a 0-d array stays one
    assert log_like(np.zeros((0, 3), np.float32), like).shape == (0, 3)


@pytest.mark.parametrize("k", [1, 10, 30])
def test_best_scored_is_the_whole_orders_best_columns_to_the_bit(k):
    """Through the pick shortlist or whole, every column and score is best_columns' of
    score(): also for a row with ties, a row with few allowed movies, a row all blocked."""
    from rec.scoring import score
    from rec.twotower import topscores

    rng = np.random.default_rng(k)
    users = rng.normal(size=(300, 24)).astype(np.float32)
    movies = rng.normal(size=(500, 24)).astype(np.float32)
    movies[7] = movies[3]  # two movies every user scores the same: ties
    scoring = {"match": "softmax", "split": 16, "offset": 3.5,
               "like": {"a": 2.0, "b": -7.0, "weight": 1.0}}
    seen = rng.random((300, 500)) < 0.05
    seen[5, 40:] = True  # 40 movies left
    seen[6] = True  # none left
    users[8, :16] = 0  # every pick logit the same: the order is log P(like)'s

    def blocked(scores):
        scores[seen] = -np.inf
    whole = score(users, movies, scoring)
    blocked(whole)
    expected = topscores.best_columns(whole, k)
    whole_rows = []
    plain = topscores.best_columns

    def spied(scores, width):  # best_columns over the shortlist, or over whole rows
        if scores.shape[1] == movies.shape[0]:
            whole_rows.append(len(scores))
        return plain(scores, width)
    topscores.best_columns = spied
    try:
        got = topscores.best_scored(users, movies, scoring, blocked, k)
    finally:
        topscores.best_columns = plain
    assert np.array_equal(got[0], expected[0]) and same_bits(got[1], expected[1])
    assert 2 <= sum(whole_rows) < 30  # the odd rows whole, the others from the shortlist


def test_dual_ease_scores_are_eases_when_users_are_fewer():
    rng = np.random.default_rng(3)
    x = binary(rng, 120, 700, 6000)
    primal = x @ ease_weights(x, 500.0)
    block = np.arange(0, 120, 3)
    dual = dual_ease_scorer(x, 500.0)(block)
    np.testing.assert_allclose(dual, primal[block], atol=2e-5)
    seen = x[block] > 0
    top = lambda s: np.argsort(-np.where(seen, -np.inf, s), axis=1, kind="stable")[:, :10]
    assert (top(dual) == top(primal[block])).mean() > 0.99


def test_ranking_metrics_in_threads_are_the_same():
    rng = np.random.default_rng(4)
    n_users, n_movies = 700, 90
    seen_u, seen_m = rng.integers(0, n_users, 5000), rng.integers(0, n_movies, 5000)
    rel_u, rel_m = rng.integers(0, n_users, 900), rng.integers(0, n_movies, 900)
    scores = rng.integers(0, 20, (n_users, n_movies)).astype(np.float32)  # ties
    args = dict(n_users=n_users, n_movies=n_movies, seen_users=seen_u, seen_movies=seen_m,
                relevant_users=rel_u, relevant_movies=rel_m, k=10, chunk=64,
                movie_counts=np.bincount(seen_m, minlength=n_movies))

    def scorer(block):
        return {"a": scores[block], "b": -scores[block].astype(np.float64)}
    one = ranking_metrics(scorer, **args)
    assert ranking_metrics(scorer, **args, threads=2) == one
    assert one["a"]["ranked_users"] == len(np.unique(rel_u))
    # evaluate's progress bar: each block as it is done, in order, the same metrics
    for threads in (1, 2):
        calls = []
        assert ranking_metrics(scorer, **args, threads=threads,
                               progress=lambda i, n: calls.append((i, n))) == one
        n = -(-len(np.unique(rel_u)) // 64)
        assert calls == [(i, n) for i in range(1, n + 1)]


def test_row_sums_are_add_at_to_the_bit():
    rng = np.random.default_rng(5)
    rows = rng.integers(0, 50, 4000)
    for shape in [(4000,), (4000, 7)]:
        values = (rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 4, shape)).astype(
            np.float32)
        plain = np.zeros((50, *shape[1:]), np.float32)
        np.add.at(plain, rows, values)
        assert same_bits(row_sums(rows, values, 50), plain)
    assert row_sums(rows[:0], np.zeros((0, 3), np.float32), 2).shape == (2, 3)


def test_moments_are_the_plain_formula_to_the_bit():
    from rec.rank.features import moments

    rng = np.random.default_rng(6)
    s = rng.standard_normal((100, 333)).astype(np.float32)
    s[rng.random(s.shape) < 0.2] = -np.inf
    s[7] = -np.inf  # a row with nothing finite
    finite = np.isfinite(s)
    n = np.maximum(finite.sum(axis=1, keepdims=True), 1)
    mean = np.where(finite, s, 0).sum(axis=1, keepdims=True) / n
    std = np.sqrt(np.maximum((np.where(finite, s - mean, 0) ** 2).sum(
        axis=1, keepdims=True) / n, 1e-12))
    got = moments(s, finite)
    assert same_bits(got[0], mean) and same_bits(got[1], std)
    # the holes given where they are (a block's rated movies): the same, and anything but
    # exactly the entries that are not finite goes the masked way, the same again
    from rec.rank.moments import Holes

    rows, columns = np.nonzero(~finite)
    shuffle = rng.permutation(len(rows))  # a history is not in the array's order
    for r, c in ((rows[shuffle], columns[shuffle]), (rows[1:], columns[1:]),
                 (np.r_[rows, rows[0]], np.r_[columns, columns[0]]),
                 (np.r_[rows[1:], 0], np.r_[columns[1:], int(np.flatnonzero(finite[0])[0])])):
        holes = Holes(r, c, s.shape)
        before = s.copy()
        got = moments(s, finite, holes)
        assert same_bits(got[0], mean) and same_bits(got[1], std)
        assert same_bits(s, before)  # the holes zeroed in place are put back
    assert Holes(rows, columns, s.shape).of(finite, finite.sum(axis=1, keepdims=True)) \
        is not None
    assert Holes(rows[1:], columns[1:], s.shape).of(
        finite, finite.sum(axis=1, keepdims=True)) is None


def test_select_is_the_stable_argsort_of_the_union():
    from rec.rank.channels import CHANNELS, top_k
    from rec.rank.features import Stack

    rng = np.random.default_rng(7)
    b, m, k = 40, 300, 20
    scores = {name: rng.integers(0, 30, (b, m)).astype(np.float32) for name in CHANNELS}
    for s in scores.values():
        s[rng.random((b, m)) < 0.3] = -np.inf
    scores["two_tower"][3] = -np.inf  # a user with no candidate from one channel
    stack = Stack.__new__(Stack)
    stack.k = k
    cand, by = stack.select(scores)
    # the plain form it replaced
    member = np.zeros((len(CHANNELS), b, m), bool)
    for i, name in enumerate(CHANNELS):
        top = top_k(scores[name], k)
        member[i, np.arange(b)[:, None], top] = np.isfinite(
            np.take_along_axis(scores[name], top, 1))
    found = member.any(axis=0)
    width = int(found.sum(axis=1).max())
    order = np.argsort(~found, axis=1, kind="stable")[:, :width]
    valid = np.take_along_axis(found, order, 1)
    assert np.array_equal(cand, np.where(valid, order, -1))
    assert np.array_equal(by, np.stack([np.take_along_axis(member[i], order, 1) & valid
                                        for i in range(len(CHANNELS))], axis=-1))


def random_ranker(rng, n_features: int):
    """A rank network of the default shape (n_features -> 128 -> 64 -> 1), random weights."""
    from rec.rank.forward import NumpyRanker

    shapes = [(n_features, 128), (128, 64), (64, 1)]
    return NumpyRanker({key: value for i, (a, b) in enumerate(shapes) for key, value in (
        (f"layers.{i}.weight", rng.standard_normal((a, b))),
        (f"layers.{i}.bias", rng.standard_normal(b)))})


@pytest.mark.parametrize("rows", [1, 5000, 10_001])
def test_rank_forward_by_blocks_is_the_whole_product(rows):
    from rec.rank.forward import FORWARD_ROWS

    rng = np.random.default_rng(8)
    net = random_ranker(rng, 37)
    x = rng.standard_normal((rows, 37)).astype(np.float32)
    whole = x
    for i, (w, b) in enumerate(net.layers):
        whole = whole @ w + b
        whole = np.maximum(whole, 0) if i < 2 else whole
    got = net.logits(x[None])
    assert got.shape == (1, rows) and FORWARD_ROWS % 96 == 0
    # the same bits where BLAS's tiles divide FORWARD_ROWS (every OpenBLAS sgemm kernel)
    np.testing.assert_allclose(got[0], whole[:, 0], rtol=1e-5, atol=1e-4)


def test_column_blocks_give_the_matrix_products_and_row_sums_to_the_bit():
    from rec.metrics import ColumnBlocks

    rng = np.random.default_rng(9)
    x = csr_matrix(binary(rng, 300, 2000, 20_000))
    matrix = rng.standard_normal((2000, 700)).astype(np.float32)
    rated = rng.integers(0, 2000, 150)
    blocks = ColumnBlocks(matrix)
    assert same_bits(blocks.row_sums(rated), matrix[rated].sum(axis=0))  # before the copy
    assert same_bits(rows_times(x, blocks), np.asarray(x @ matrix, np.float32))
    assert same_bits(blocks.row_sums(rated), matrix[rated].sum(axis=0))  # from the blocks
    assert same_bits(rows_times(x, ColumnBlocks(matrix[:, :5])), np.asarray(x @ matrix[:, :5]))


def test_spread_columns_is_the_column_assignment():
    from rec.rank.channels import spread_columns

    rng = np.random.default_rng(10)
    values = rng.standard_normal((30, 70)).astype(np.float32)
    for columns, n in ((np.sort(rng.choice(90, 70, replace=False)), 90), (np.arange(70), 70)):
        plain = np.zeros((30, n), np.float32)
        plain[:, columns] = values
        assert same_bits(spread_columns(values, columns, n), plain)


def test_distinct_pairs_finds_a_pair_given_twice():
    from rec.rank.features import distinct_pairs

    rows, movies = np.array([0, 0, 1, 2]), np.array([3, 4, 3, 4])
    assert distinct_pairs(rows, movies, 5)
    assert not distinct_pairs(np.r_[rows, 1], np.r_[movies, 3], 5)
    assert distinct_pairs(rows[:0], movies[:0], 5)


def test_ease_b_is_read_as_a_view_of_the_file_checked_by_its_crc():
    import io

    from rec.rank.easefile import load_item_models, stored_member

    rng = np.random.default_rng(11)
    b = rng.standard_normal((40, 40)).astype(np.float32)
    buffer = io.BytesIO()
    np.savez(buffer, items=np.arange(40), b=b, lam=np.float64(5.0),
             svd=np.ones((40, 2), np.float32))
    data = buffer.getvalue()
    with np.load(io.BytesIO(data)) as z:
        view = stored_member(z, "b", data)
        assert same_bits(view, b) and not view.flags.writeable
    ease, _ = load_item_models(data, "ease.npz")
    assert same_bits(ease.b.row_sums(np.array([1, 5])), b[[1, 5]].sum(axis=0))
    damaged = bytearray(data)
    at = data.index(b.tobytes()[:16])
    damaged[at] ^= 1
    with pytest.raises(Exception, match="damaged"):
        load_item_models(bytes(damaged), "ease.npz")


def test_descending_order_is_the_stable_argsort_of_the_negated_rows():
    from rec.rank.ordering import descending_order, descending_ranks

    rng = np.random.default_rng(11)
    values = rng.integers(-5, 6, (50, 300)).astype(np.float32)  # ties everywhere
    values[rng.random(values.shape) < 0.1] = -np.inf
    values[rng.random(values.shape) < 0.05] = np.inf
    values[rng.random(values.shape) < 0.1] = -0.0  # equal to 0.0: ties with it by column
    values[3] = rng.standard_normal(300).astype(np.float32) * 1e-30  # subnormal and tiny
    for v in (values, values[:, :1], values[:0], rng.standard_normal((7, 40)).astype(np.float32)):
        plain = np.argsort(-v, axis=1, kind="stable")
        got = descending_order(v)
        assert got.dtype == plain.dtype and np.array_equal(got, plain)
    with_nan = values.copy()
    with_nan[5, 7] = np.nan  # NaN: numpy's own sort
    assert np.array_equal(descending_order(with_nan), np.argsort(-with_nan, axis=1,
                                                                 kind="stable"))
    doubles = values.astype(np.float64)  # another dtype: numpy's own sort
    assert np.array_equal(descending_order(doubles), np.argsort(-doubles, axis=1,
                                                                kind="stable"))
    ranks = np.empty(values.shape, np.float32)
    np.put_along_axis(ranks, np.argsort(-values, axis=1, kind="stable"),
                      np.arange(300, dtype=np.float32)[None, :].repeat(50, 0), 1)
    of_rank = np.log1p(np.arange(300, dtype=np.float32)) / np.float32(np.log(300))
    assert same_bits(descending_ranks(values, of_rank), np.log1p(ranks) / np.float32(np.log(300)))


def test_finite_max_is_the_masked_max():
    from rec.rank.features import finite_max

    rng = np.random.default_rng(12)
    s = rng.standard_normal((20, 50)).astype(np.float32)
    s[rng.random(s.shape) < 0.3] = -np.inf
    s[4] = -np.inf  # nothing finite
    plain = lambda a: np.where(np.isfinite(a), a, -np.inf).max(axis=1, keepdims=True)  # noqa
    assert same_bits(finite_max(s, np.isfinite(s)), plain(s))
    for bad in (np.inf, np.nan):
        t = s.copy()
        t[2, 3] = bad  # dropped by the mask: the masked max itself
        assert same_bits(finite_max(t, np.isfinite(t)), plain(t))


def test_features_written_a_few_users_at_a_time_are_the_same(monkeypatch):
    """Stack.features writes its rows a block of users at a time: any block size gives the
    same array; and the genre profile is np.add.at's (rec.metrics.row_sums) to the bit."""
    import rec.rank.features as features
    from rec.rank.channels import Ease, PureSvd
    from rec.rank.features import Block, Stack

    rng = np.random.default_rng(13)
    m, users = 80, 9
    genres = rng.integers(0, 6, (m, 3))
    stack = Stack(movie_vecs=rng.standard_normal((m, 4)).astype(np.float32),
                  scoring={"match": "dot", "scale": 1.0},
                  ease=Ease(np.arange(m), rng.standard_normal((m, m)).astype(np.float32), 1.0),
                  svd=PureSvd(np.arange(m), np.eye(m, 2, dtype=np.float32)),
                  counts=rng.integers(0, 50, m), like_rate=np.zeros(m, np.float32),
                  genres=genres, years=rng.integers(1950, 2000, m), n_genders=3, n_ages=4,
                  has_demographics=True, k=10)
    rows = np.repeat(np.arange(users), 7)
    movies = np.concatenate([rng.choice(m, 7, replace=False) for _ in range(users)])
    block = Block(rng.standard_normal((users, 4)).astype(np.float32), rows, movies,
                  rng.integers(1, 6, len(rows)).astype(np.float32),
                  rng.integers(0, 3, (users, 3)))
    cand, by, scores = stack.candidates(block)
    whole = stack.features(block, cand, by, scores)
    monkeypatch.setattr(features, "OUT_BLOCK_BYTES", 1)  # a user at a time
    assert same_bits(stack.features(block, cand, by, scores), whole)
    share = stack._genre_share()
    profile = row_sums(rows, share[movies], users)
    profile = profile / np.maximum(np.linalg.norm(profile, axis=1, keepdims=True), 1e-12)
    assert same_bits(stack._genre_profile(block), profile)


def test_a_shortlists_top_k_is_the_whole_rows_index_for_index():
    """rec.shortlists: the top k of a shortlist (a channel's top 100, the candidates, an
    order every user shares) is dense_top's of the full rows, ties included (those rows
    go through dense_top), and ranking_metrics gives the same metrics either way."""
    from rec.shortlists import Shortlist, dense_top, shared_order_scorer, shortlist_top

    rng = np.random.default_rng(14)
    b, m, k = 60, 400, 10
    for scores in (rng.standard_normal((b, m)).astype(np.float32),
                   rng.integers(0, 40, (b, m)).astype(np.float32)):  # ties everywhere
        scores[rng.random((b, m)) < 0.2] = -np.inf
        scores[5, 10:] = -np.inf  # fewer finite than k
        seen_rows, seen_columns = np.nonzero(rng.random((b, m)) < 0.1)
        seen = np.zeros((b, m), bool)
        seen[seen_rows, seen_columns] = True
        plain = dense_top(scores, seen_rows, seen_columns, k)
        for width in (5, 10, 11, 100):
            top = smallest_k(scores, width, negated=True)  # a channel's top `width`
            values = np.take_along_axis(scores, top, 1)
            short = Shortlist(top, values, values.min(axis=1), lambda rows: scores[rows])
            assert np.array_equal(shortlist_top(short, seen, seen_rows, seen_columns, k), plain)
        # candidates: -inf off the list
        cand = np.where(rng.random((b, 50)) < 0.9, rng.choice(m, (b, 50)), -1)
        cand = np.sort(cand, axis=1)
        cand[:, 1:][cand[:, 1:] == cand[:, :-1]] = -1  # distinct columns
        logits = np.where(cand >= 0, np.take_along_axis(scores, np.maximum(cand, 0), 1),
                          -np.inf).astype(np.float32)
        full = np.full((b, m), -np.inf, np.float32)
        rows = np.nonzero(cand >= 0)
        full[rows[0], cand[rows]] = logits[rows]
        short = Shortlist(cand, logits, np.full(b, -np.inf), lambda rows: full[rows])
        assert np.array_equal(shortlist_top(short, seen, seen_rows, seen_columns, k),
                              dense_top(full, seen_rows, seen_columns, k))
    # an order every user shares, with a row's own offset (the bias baseline's sums)
    values, offsets = rng.standard_normal(m), rng.standard_normal(b) * 1e3
    values[:50] = values[0]  # ties at the head
    scorer = shared_order_scorer(values, lambda block: offsets[block][:, None])
    block = np.arange(b)
    for short in (scorer(block), shared_order_scorer(values)(block)):
        assert np.array_equal(shortlist_top(short, seen, seen_rows, seen_columns, k),
                              dense_top(short.dense(block), seen_rows, seen_columns, k))
    seen_users = np.repeat(np.arange(300), 30)
    seen_movies = rng.integers(0, m, len(seen_users))
    args = dict(n_users=300, n_movies=m, seen_users=seen_users, seen_movies=seen_movies,
                relevant_users=rng.integers(0, 300, 900), relevant_movies=rng.integers(0, m, 900),
                movie_counts=rng.integers(0, 40, m), chunk=64)
    dense = ranking_metrics(lambda blk: offsets[blk % b][:, None] + values[None, :], **args)
    assert ranking_metrics(shared_order_scorer(values, lambda blk: offsets[blk % b][:, None]),
                           **args) == dense


def test_ease_rows_are_checked_as_read_and_b_whole_before_its_blocks():
    """rec.rank.easefile: a reader of a few users (rows_only) checks each row of B it sums
    against b_rows_crc32 (a damaged row it never reads is not its concern), and B whole
    before any product over all of it; a file without the row CRCs (written before them)
    is checked whole at once; a mapping reads as the bytes do."""
    import mmap

    from rec.errors import RecError
    from rec.rank.easefile import ease_file, load_item_models

    rng = np.random.default_rng(15)
    b = rng.standard_normal((40, 40)).astype(np.float32)
    data = ease_file(np.arange(40), b, 5.0, np.ones((40, 2), np.float32), "run")
    damaged = bytearray(data)
    damaged[data.index(b[7].tobytes()) + 5] ^= 1  # row 7
    ease, _ = load_item_models(bytes(damaged), "ease.npz", rows_only=True)
    assert same_bits(ease.b.row_sums(np.array([1, 5])), b[[1, 5]].sum(axis=0))
    with pytest.raises(RecError, match="ease.npz is damaged .bad CRC-32 of row 7 of b.npy."):
        ease.b.row_sums(np.array([3, 7]))
    with pytest.raises(RecError, match="bad CRC-32 of b.npy"):
        ease.b.blocks
    with pytest.raises(RecError, match="bad CRC-32 of b.npy"):
        load_item_models(bytes(damaged), "ease.npz")  # a reader of all of B
    mapping = mmap.mmap(-1, len(data))  # as rec.storage.snapshot.Snapshot.map gives it
    mapping.write(data)
    ease, svd = load_item_models(mapping, "ease.npz", rows_only=True)
    assert same_bits(ease.b.row_sums(np.array([0, 39])), b[[0, 39]].sum(axis=0))
    x = csr_matrix(binary(rng, 5, 40, 30))
    assert same_bits(rows_times(x, ease.b), np.asarray(x @ b, np.float32))  # B checked whole
    assert same_bits(svd.v, np.ones((40, 2), np.float32))
    old = io_bytes(items=np.arange(40), b=b, lam=np.float64(5.0), svd=np.ones((40, 2),
                   np.float32), run_id=np.array("run"))
    damaged = bytearray(old)
    damaged[old.index(b[7].tobytes()) + 5] ^= 1
    with pytest.raises(RecError, match="bad CRC-32 of b.npy"):  # no row CRCs: all of B
        load_item_models(bytes(damaged), "ease.npz", rows_only=True)


def io_bytes(**arrays) -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_a_keyed_rows_product_is_the_same_whoever_else_is_in_it():
    """BLAS's bits for a row depend on where it sits in its tile (12 rows with this numpy's
    OpenBLAS): keyed by what the row is (rec.lanes), a user's scores are the same alone,
    among others in any order, and in --all's consecutive blocks."""
    from rec.lanes import LANES, lane_product

    rng = np.random.default_rng(11)
    a = rng.standard_normal((700, 32)).astype(np.float32)
    b = rng.standard_normal((32, 523)).astype(np.float32)
    keys = np.arange(700)
    whole = lane_product(a, b, keys)
    for _ in range(30):
        some = rng.choice(700, rng.integers(1, 60), replace=False)  # any order
        assert np.array_equal(lane_product(a[some], b, keys[some]), whole[some])
    for lo, hi in ((0, 1), (3, 400), (LANES, 5 * LANES), (690, 700)):  # consecutive blocks
        assert np.array_equal(lane_product(a[lo:hi], b, keys[lo:hi]), whole[lo:hi])
    assert np.array_equal(lane_product(a, b, None), a @ b)
    assert lane_product(a[:0], b, keys[:0]).shape == (0, 523)


def test_the_rank_networks_logit_of_a_keyed_row_is_the_same_wherever_it_sits():
    from rec.rank.forward import FORWARD_ROWS

    rng = np.random.default_rng(12)
    net = random_ranker(rng, 41)
    x = rng.standard_normal((FORWARD_ROWS + 500, 41)).astype(np.float32)
    movies = rng.integers(0, 3883, len(x))  # a candidate's row is keyed by its movie
    whole = net.logits(x, movies)
    perm = rng.permutation(len(x))
    assert np.array_equal(net.logits(x[perm], movies[perm]), whole[perm])
    for i in rng.choice(len(x), 20, replace=False):
        assert np.array_equal(net.logits(x[i:i + 1], movies[i:i + 1]), whole[i:i + 1])


def test_rows_that_share_a_lane_are_the_same_bits_and_bounded_memory():
    """Users asked at a stride of 96 share one lane: the padded product was LANES times
    the rows (6,048 rows for 63 users), past the size where OpenBLAS splits its work
    otherwise (the bits changed) and LANES times the memory."""
    import tracemalloc

    from rec.lanes import LANES, lane_product

    rng = np.random.default_rng(13)
    a = rng.standard_normal((63, 64)).astype(np.float32)
    b = rng.standard_normal((64, 3883)).astype(np.float32)
    keys = np.arange(63) * LANES
    alone = np.concatenate([lane_product(a[i:i + 1], b, keys[i:i + 1]) for i in range(63)])
    tracemalloc.start()
    together = lane_product(a, b, keys)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert np.array_equal(together, alone)
    assert peak < 20 * together.nbytes  # not LANES times the rows
