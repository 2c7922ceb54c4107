"""What the speed work (issue 18) must not change: the history dropout drawn in numpy keeps
F.dropout's distribution, data-parallel processes see one process's batch, --threads is
applied (and refused when it is not a count), a seed fixes the whole model, and the block
writer prints exactly what the row writer prints. Speeds themselves are measured by
bench/bench_speed.py, not here."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import rec
from test_train import prepared, world  # noqa: F401  (the synthetic world, preprocessed)


class _Hist:
    """A Histories stand-in: 6 users with 1..6 ratings each over 20 movies."""

    def __init__(self):
        counts = np.arange(1, 7)
        self.start = np.r_[0, np.cumsum(counts)]
        rng = np.random.default_rng(0)
        self.movies = np.concatenate([rng.choice(20, c, replace=False) for c in counts])
        self.ratings = rng.integers(1, 6, self.start[-1]).astype(np.float32)
        self.n_movies, self.mean = 20, 3.0

    def rows(self, users):
        from rec.twotower.recall_rank import Histories

        return Histories.rows(self, users)


def test_sparse_dropout_keeps_the_expectation_and_the_zeros():
    from rec.twotower.fullstep import dropout_scales, step_rows

    scales = dropout_scales(np.random.default_rng(1), 400_000, 0.5)
    assert set(np.unique(scales)) == {0.0, 2.0}
    assert abs(scales.mean() - 1.0) < 0.01 and abs((scales == 0).mean() - 0.5) < 0.01
    assert (dropout_scales(None, 5, 0.5) == 1).all() and (dropout_scales(np.random.default_rng(),
                                                                         5, 0.0) == 1).all()
    hist, users = _Hist(), np.array([5, 2, 0])
    full = step_rows(hist, users).bags(None, hist.n_movies, hist.mean)
    rng, sums = np.random.default_rng(2), [np.zeros_like(b) for b in full]
    draws = 4000
    for _ in range(draws):
        for total, bag in zip(sums, step_rows(hist, users, rng=rng, p=0.5).bags(
                None, hist.n_movies, hist.mean)):
            assert (bag[full[0] == 0] == 0).all()  # a zero of the bag stays zero
            total += bag
    for total, bag in zip(sums, full):  # each entry's mean is the undropped entry
        assert np.abs(total / draws - bag).max() < 0.06 * np.abs(bag).max()
    # the two bags drop independently, as F.dropout on each did
    r = step_rows(hist, users, rng=np.random.default_rng(3), p=0.5)
    assert not np.array_equal(r.keep_watched, r.keep_rated)


def test_each_process_takes_its_users_with_one_process_masks_and_shares():
    from rec.twotower.fullstep import step_rows

    hist, users = _Hist(), np.array([5, 2, 0, 3, 1])
    one = step_rows(hist, users, rng=np.random.default_rng(4), p=0.5)
    parts = [step_rows(hist, users, rank, 2, np.random.default_rng(4), 0.5) for rank in (0, 1)]
    assert [list(p.users) for p in parts] == [[5, 0, 1], [2, 3]]
    for rank, part in enumerate(parts):
        mine = one.row % 2 == rank
        assert np.array_equal(part.row, one.row[mine] // 2)
        assert np.array_equal(part.movie, one.movie[mine])
        assert np.array_equal(part.keep_watched, one.keep_watched[mine])  # the same masks
        assert (part.users_share, part.ratings_share) == (2.5, len(one.row) / 2)
    assert (one.users_share, one.ratings_share) == (5, len(one.row))


def test_threads_is_applied_and_a_bad_count_is_one_line(world):
    result = rec(world, "train", "--epochs", "1", "--threads", "1", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["threads"] == 1
    from rec.engine import runtime

    assert runtime._threads == 1
    for bad in ("0", "-2", "two"):
        result = rec(world, "train", "--threads", bad)
        assert result.exit_code == 2
        assert len(result.stderr.strip().splitlines()) == 1 and "--threads" in result.stderr


def test_default_threads_share_the_hosts_cores(monkeypatch):
    from rec.engine import runtime

    monkeypatch.setattr(runtime, "available_cores", lambda: 16)
    monkeypatch.delenv("PADDLE_TRAINERS_NUM", raising=False)
    monkeypatch.delenv("PADDLE_LOCAL_SIZE", raising=False)
    assert runtime.default_threads() == 16
    monkeypatch.setenv("PADDLE_TRAINERS_NUM", "8")  # 8 processes in all, 4 on this host
    monkeypatch.setenv("PADDLE_LOCAL_SIZE", "4")
    assert runtime.default_threads() == 4
    monkeypatch.setattr(runtime, "available_cores", lambda: 2)
    assert runtime.default_threads() == 1


def test_the_same_seed_gives_the_same_model(world, tmp_path):
    """Initialisation, shuffle and the numpy-drawn dropout all come from --seed: the weights
    are bit for bit the same; another seed gives other weights."""
    other, third = tmp_path / "other", tmp_path / "third"
    shutil.copytree(world, other)
    shutil.copytree(world, third)
    for root, seed in ((world, "5"), (other, "5"), (third, "6")):
        assert rec(root, "train", "--epochs", "2", "--seed", seed, "--threads", "1").exit_code == 0
    import paddle

    # compared as arrays: the file also holds Paddle's per-process parameter names
    a, b, c = (paddle.load(str(r / "output" / "model" / "best" / "model.pdparams"))
               for r in (world, other, third))
    assert sorted(a) == sorted(b) == sorted(c)
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    assert not all(np.array_equal(a[k].numpy(), c[k].numpy()) for k in a)


@pytest.mark.parametrize("fmt", ["tsv", "csv", "json"])
def test_a_block_prints_what_its_rows_print(capsys, fmt):
    from rec.results import RowWriter

    columns = ["user", "rank", "title", "stars", "score", "flag", "note"]
    block = {"user": [1, 1, "u-2"], "rank": [1, 2, 1],
             "title": ["A\tTab", "New\nline", "Plain, \"quoted\""],
             "stars": [4.0, 3.98, -0.0], "score": [1e-05, 12345678.9, float("nan")],
             "flag": [True, 1, 1.0]}  # no "note": an empty cell
    with RowWriter(columns, fmt) as out:
        out.write_block(block)
        out.write_block({c: [] for c in columns})
    blocked = capsys.readouterr().out
    with RowWriter(columns, fmt) as out:
        for values in zip(*block.values()):
            out.write(dict(zip(block, values)))
    assert blocked == capsys.readouterr().out
    if fmt == "tsv":
        assert blocked.splitlines()[1].split("\t")[:4] == ["1", "1", "A Tab", "4"]
        assert blocked.splitlines()[3].split("\t")[5] == "1"  # 1.0 prints as 1, True as True
        assert blocked.splitlines()[1].split("\t")[5] == "True"


def test_a_negative_zero_prints_as_zero_whatever_comes_before_it(capsys):
    """A column keyed its cells by value, 0.0 and -0.0 as one, the first seen deciding the
    text: a user's score of 0 printed '-0' when asked beside a user whose -0.0 came first."""
    from rec.results import RowWriter

    for scores in ([-0.0, 0.0], [0.0, -0.0], [-0.0]):
        with RowWriter(["score"], "tsv") as out:
            out.write_block({"score": scores})
        assert capsys.readouterr().out.splitlines()[1:] == ["0"] * len(scores)


def test_host_tensor_shares_the_arrays_memory_on_the_cpu():
    """A step's inputs reach Paddle without a copy (DLPack): the tensor is the array, so it
    holds exactly the array's numbers; a read-only array is copied instead."""
    from rec.engine.runtime import host_tensor

    bag = np.arange(12, dtype=np.float32).reshape(3, 4)
    ids = np.array([3, 1, 2], np.int64)
    shared, index = host_tensor(bag), host_tensor(ids)
    assert np.array_equal(shared.numpy(), bag) and np.array_equal(index.numpy(), ids)
    assert shared.shape == [3, 4] and str(index.dtype).endswith("int64")
    bag[0, 0] = 42.0  # the same memory: what a step must never do while the tensor is used
    assert shared.numpy()[0, 0] == 42.0
    frozen = np.ones(4, np.float32)
    frozen.flags.writeable = False
    copied = host_tensor(frozen)
    assert np.array_equal(copied.numpy(), frozen)


def test_one_ranking_pass_gives_each_like_weights_own_metrics():
    """Validation ranks every like weight from one score computation, each as a shortlist
    of the best by pick logit: each weight's metrics are those of rec.scoring.score's order
    with that weight, on a catalogue past the shortlist (rows ranked on it, and rows ranked
    whole: a near tie, too few unseen movies) and one within it."""
    from rec.metrics import ranking_metrics
    from rec.scoring import vector_scorer
    from rec.twotower.recall_rank import LIKE_WEIGHTS
    from rec.twotower.topscores import like_weight_shortlists

    rng = np.random.default_rng(0)
    for n_users, n_movies in ((30, 50), (80, 400)):
        users = rng.normal(size=(n_users, 9)).astype(np.float32)
        movies = rng.normal(size=(n_movies, 9)).astype(np.float32)
        movies[1] = movies[0]  # two movies with the same scores for everyone
        users[::2, :5] *= 0.05  # half the users' picks nearly flat: log P(like) decides
        # a steep like-calibration: log P(like) from -15 to 0, so that a movie far down
        # the picks can reach a top 10 (the shortlist's ceiling sends its row whole)
        scoring = {"match": "softmax", "split": 5, "offset": 3.5, "clip": [1, 5],
                   "like": {"a": 5.0, "b": -20.0, "weight": 0.0}}
        seen_u = rng.integers(0, n_users, 10 * n_movies)
        seen_m = rng.integers(0, n_movies, 10 * n_movies)
        seen_u, seen_m = np.r_[seen_u, np.zeros(n_movies - 30, int)], \
            np.r_[seen_m, np.arange(30, n_movies)]  # user 0 left 30 unseen at most
        rel_u, rel_m = rng.integers(0, n_users, 6 * n_users), rng.integers(0, n_movies, 6 * n_users)
        rank_args = (n_users, n_movies, seen_u, seen_m, rel_u, rel_m)
        together = ranking_metrics(like_weight_shortlists(users, movies, scoring, LIKE_WEIGHTS,
                                                          seen_u, seen_m), *rank_args, chunk=7)
        assert sorted(together) == sorted(LIKE_WEIGHTS)
        for w in LIKE_WEIGHTS:
            alone = {**scoring, "like": {**scoring["like"], "weight": w}}
            assert together[w] == ranking_metrics(vector_scorer(users, movies, alone),
                                                  *rank_args, chunk=7), (n_movies, w)


def test_the_networks_heads_are_the_saved_vectors_products():
    """The rating head, computed as [r_u, 1, b_u] . [r_m, b'_m, 1] (the reordering on the
    batch's rows), is what rec.scoring computes from the saved vectors [.., r_u, b_u, 1] and
    [.., r_m, 1, b'_m]; the pick head likewise, with or without the sampled step's columns."""
    import paddle

    from rec.models.recall_rank import RecallRankConfig, RecallRankTwoTower
    from rec.scoring import pick_logits, stars

    paddle.seed(3)
    config = RecallRankConfig(n_movies=40, n_genders=3, n_ages=4, n_occupations=5,
                              n_genres=6, n_title_words=30, genre_len=3, title_len=5,
                              global_mean=3.6)
    net = RecallRankTwoTower(config)
    net.eval()
    rng = np.random.default_rng(0)
    demo = paddle.to_tensor(rng.integers(0, 3, (7, 3)))
    columns = np.array([2, 5, 11, 39])  # every movie the 7 users rated: the sampled C
    bag = np.zeros((7, 40), np.float32)
    bag[:, columns] = rng.random((7, 4)) < 0.7
    watched, rated = paddle.to_tensor(bag), paddle.to_tensor(
        bag * rng.normal(size=(7, 40)).astype(np.float32))
    ids = paddle.arange(40, dtype="int64")
    genres = paddle.to_tensor(rng.integers(0, 6, (40, 3)))
    titles = paddle.to_tensor(rng.integers(0, 30, (40, 5)))
    logits, predicted = net(demo, watched, rated, ids, genres, titles)
    u = net.user_vectors(demo, watched, rated).numpy()
    m = net.movie_vectors(ids, genres, titles).numpy()
    scoring = net.scoring()
    np.testing.assert_allclose(predicted.numpy(), stars(u, m, scoring), rtol=0, atol=2e-5)
    np.testing.assert_allclose(logits.numpy(), pick_logits(u, m, scoring), rtol=0, atol=2e-5)
    some = paddle.to_tensor(columns)
    sub_logits, sub_predicted = net(demo, paddle.gather(watched, some, axis=1),
                                    paddle.gather(rated, some, axis=1), some,
                                    paddle.gather(genres, some), paddle.gather(titles, some),
                                    some)
    np.testing.assert_allclose(sub_predicted.numpy(), predicted.numpy()[:, columns],
                               rtol=0, atol=2e-5)
    np.testing.assert_allclose(sub_logits.numpy(), logits.numpy()[:, columns], rtol=0,
                               atol=2e-5)
