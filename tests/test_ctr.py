"""CTR: the Criteo reader and transforms, ctr-train / ctr-predict on synthetic Criteo and
MovieLens, the numpy forward pass, and `rec recommend --rerank`.

Two small worlds are built once per module: a synthetic Criteo file with planted pairwise
interactions (which the logistic-regression baseline cannot represent) and a small synthetic
MovieLens, preprocessed, with a quickly trained two-tower model and its saved features.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from rec.datasets import criteo, criteo_synthetic
from rec.metrics import auc, logloss

from conftest import assert_paddle_free, rec, run_stages

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[1]


def tsv(text: str) -> list[dict]:
    lines = text.splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:]]


def one_line_error(result, code: int, *needles: str) -> None:
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


# --- the reader -----------------------------------------------------------------------------


def read_all(path, **kw) -> criteo.Chunk:
    chunks = list(criteo.read_chunks(path, **kw))
    return criteo.Chunk(*[None if chunks[0].labels is None and name == "labels" else
                          np.concatenate([getattr(c, name) for c in chunks])
                          for name in ("line_numbers", "labels", "dense", "cats", "cat_missing")])


def test_reader_parses_hand_written_lines_exactly():
    c = read_all(FIXTURES / "criteo_small.txt")
    # line 3 is blank: skipped; every other line is one sample, numbered as in the file
    assert c.line_numbers.tolist() == [1, 2, 4, 5, 6]
    assert c.labels.tolist() == [1, 0, 0, 1, 0]
    nan = np.nan
    np.testing.assert_array_equal(c.dense[0], [5, 0, -1, 12, nan, 3, 100, 0, 7, 1, 2, nan, 9])
    np.testing.assert_array_equal(c.dense[1], [1, 2] + [nan] * 11)  # short line: the rest missing
    assert np.isnan(c.dense[2]).all() and np.isnan(c.dense[3]).all()
    np.testing.assert_array_equal(c.dense[4], np.arange(13))
    assert c.cats[0, 0] == 0x68FD1E64 and c.cats[0, 25] == 0x9727DD16
    assert c.cat_missing[0].tolist() == [j == 21 for j in range(26)]  # C22 is empty
    assert c.cats[2, :3].tolist() == [0xABCDEF01, 0, 0xFFFFFFFF]  # upper case is hex too
    assert c.cat_missing[2].tolist() == [False] * 3 + [True] * 23
    assert c.cat_missing[1].all() and c.cat_missing[3].all()  # label-only line
    assert c.cats[4, :2].tolist() == [0x05DB9164, 0x38D50E09] and c.cat_missing[4, 2:].all()


def test_reader_is_the_same_in_tiny_chunks_and_without_a_final_newline(tmp_path):
    whole = read_all(FIXTURES / "criteo_small.txt")
    text = (FIXTURES / "criteo_small.txt").read_bytes().rstrip(b"\n")
    (tmp_path / "f.txt").write_bytes(text.replace(b"\n", b"\r\n"))  # and Windows line ends
    pieces = read_all(tmp_path / "f.txt", chunk_bytes=7)
    for name in ("line_numbers", "labels", "cats", "cat_missing"):
        np.testing.assert_array_equal(getattr(pieces, name), getattr(whole, name))
    np.testing.assert_array_equal(pieces.dense, whole.dense)


def test_reader_real_sample_lines():
    path = ROOT.parent / "shared" / "data" / "criteo" / "paddlerec_sample_test.txt"
    if not path.exists():
        pytest.skip("../shared/data/criteo not present")
    lines = path.read_text().splitlines()
    c = read_all(path)
    assert len(c) == len(lines)
    for i in (0, len(lines) - 1):
        fields = lines[i].split("\t") + [""] * (40 - len(lines[i].split("\t")))
        assert c.labels[i] == int(fields[0])
        assert [int(x, 16) if x else 0 for x in fields[14:]] == \
            np.where(c.cat_missing[i], 0, c.cats[i]).tolist()


@pytest.mark.parametrize("line,message", [
    ("2\t1", ":2: the label must be 0 or 1 (got '2')"),
    ("\t1", ":2: the label must be 0 or 1 (it is empty)"),
    ("0\t1.5", ":2: I1 is not an integer ('1.5')"),
    ("0\t1\t-", ":2: I2 is not an integer ('-')"),
    ("1" + "\t" * 14 + "12345xyz", ":2: C1 is not hexadecimal ('12345xyz')"),
    ("1" + "\t0" * 40, ":2: 41 tab-separated fields, expected at most 40"),
])
def test_bad_lines_name_the_line_and_field(line, message):
    with pytest.raises(criteo.CriteoFormatError) as e:
        criteo.parse_lines(["1\t2", line, "0"], source="f.txt")
    assert str(e.value) == f"f.txt{message}"
    assert e.value.exit_code == 2


def test_file_without_labels():
    c = read_all(FIXTURES / "criteo_nolabel.txt", has_label=False)
    assert c.labels is None and c.line_numbers.tolist() == [1, 2]
    np.testing.assert_array_equal(c.dense[0], [5, 0, -1, 12, np.nan, 3, 100, 0, 7, 1, 2, np.nan, 9])
    assert c.cats[0, 0] == 0x68FD1E64
    with pytest.raises(criteo.CriteoFormatError, match="input:1: 41 tab-separated"):
        criteo.parse_lines(["\t".join(["1"] * 14 + ["a"] * 27)], has_label=False)


def test_transforms():
    c = read_all(FIXTURES / "criteo_small.txt")
    dense = criteo.log_dense(c.dense)
    assert dense.dtype == np.float32 and dense[1, 2] == 0.0  # missing -> 0
    np.testing.assert_allclose(dense[0, :4], [np.log(6), 0, -np.log(2), np.log(13)], rtol=1e-6)
    ids = criteo.hash_ids(c.cats, c.cat_missing, 1000)
    assert ids.min() >= 0 and ids.max() < 1000
    np.testing.assert_array_equal(ids, criteo.hash_ids(c.cats, c.cat_missing, 1000))
    assert ids[1, 0] == ids[3, 0] and ids[1, 0] != ids[1, 1]  # missing: one id per field
    counter = criteo.VocabCounter()
    counter.add(c.cats, c.cat_missing)
    counter.add(c.cats[:1], c.cat_missing[:1])  # line 1's values now seen twice
    vocab = counter.vocabulary(min_count=2)
    v = vocab.ids(c.cats, c.cat_missing)
    assert (v[0] - vocab.offsets >= 2).sum() == 25  # its 25 values have their own ids
    assert v[0, 21] == vocab.offsets[21]  # C22 is empty on line 1: the field's missing id
    assert v[4, 0] == vocab.offsets[0] + 1  # 05db9164 seen once: the field's rare id
    mask = criteo.validation_mask(np.arange(1, 100001), 0.1, seed=7)
    assert 0.09 < mask.mean() < 0.11
    np.testing.assert_array_equal(mask[50:60], criteo.validation_mask(np.arange(51, 61), 0.1, 7))


def test_auc_and_logloss_match_their_definitions():
    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.3
    s = np.round(rng.random(300), 1)  # many ties
    pos, neg = s[y], s[~y]
    brute = ((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean()
    assert abs(auc(y, s) - brute) < 1e-12
    p = np.clip(s, 0.05, 0.95)
    assert abs(logloss(y, p) - float(-np.mean(np.where(y, np.log(p), np.log(1 - p))))) < 1e-9


def test_synthetic_generator_is_seeded_and_has_structure(tmp_path):
    spec = criteo_synthetic.SyntheticCriteoSpec(lines=3000, seed=5)
    a = criteo_synthetic.generate(tmp_path / "a.txt", spec)
    criteo_synthetic.generate(tmp_path / "b.txt", spec)
    assert (tmp_path / "a.txt").read_bytes() == (tmp_path / "b.txt").read_bytes()
    assert a["bayes_auc"] > 0.85 and 0.15 < a["click_rate"] < 0.5
    c = read_all(tmp_path / "a.txt")
    assert len(c) == 3000 and c.cat_missing.any() and np.isnan(c.dense).any()


# --- Criteo through the CLI -----------------------------------------------------------------

CRITEO_LINES = 10000
CRITEO_TRAIN = ["--data", "criteo", "--hash-size", "5000", "--embedding-size", "8", "--hidden",
                "32,16", "--epochs", "4", "--batch-size", "128", "--lr", "1e-2"]


@pytest.fixture(scope="module")
def criteo_world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("criteo")
    criteo_synthetic.generate(root / "train.txt", criteo_synthetic.SyntheticCriteoSpec(
        lines=CRITEO_LINES, seed=3, max_cardinality=12, interactions=8, interaction_scale=1.5))
    return root


@pytest.fixture(scope="module")
def criteo_trained(criteo_world) -> dict:
    """Both models trained on the same file; each one's output folder kept."""
    out = {}
    for model in ("deepfm", "wide_deep"):
        result = rec(criteo_world, "ctr-train", *CRITEO_TRAIN, "--model", model,
                     "--input", str(criteo_world / "train.txt"), "--format", "json")
        assert result.exit_code == 0, result.output
        shutil.copytree(criteo_world / "output", criteo_world / model)
        out[model] = json.loads(result.stdout)
    return out


@pytest.mark.parametrize("model", ["deepfm", "wide_deep"])
def test_models_beat_logistic_regression_on_planted_interactions(criteo_trained, criteo_world,
                                                                 model):
    m = criteo_trained[model]
    assert m["model"] == model and m["data"] == "criteo"
    assert m["auc"] > m["baseline_auc"] + 0.03, m
    assert m["logloss"] < m["baseline_logloss"], m
    saved = json.loads((criteo_world / model / "ctr" / "model" / "metrics.json").read_text())
    assert {k: saved[k] for k in ("auc", "logloss", "baseline_auc", "baseline_logloss")} == \
        {k: m[k] for k in ("auc", "logloss", "baseline_auc", "baseline_logloss")}
    history = json.loads((criteo_world / model / "ctr" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert m["train_samples"] + m["val_samples"] == CRITEO_LINES
    assert 0.08 < m["val_samples"] / CRITEO_LINES < 0.12


def test_predict_has_one_row_per_input_line_in_order(criteo_world, criteo_trained, tmp_path):
    world = tmp_path / "w"
    shutil.copytree(criteo_world / "deepfm", world / "output")
    result = rec(world, "ctr-predict", str(FIXTURES / "criteo_small.txt"))
    assert result.exit_code == 0, result.output
    rows = tsv(result.stdout)
    assert [r["line"] for r in rows] == ["1", "2", "4", "5", "6"]  # the blank line 3 has none
    assert [r["label"] for r in rows] == ["1", "0", "0", "1", "0"]
    assert all(0 < float(r["probability"]) < 1 for r in rows)
    assert "AUC" in result.stderr
    # the same from stdin, and without labels
    piped = rec(world, "ctr-predict", "-", input=(FIXTURES / "criteo_small.txt").read_text())
    assert piped.stdout == result.stdout
    nolabel = rec(world, "ctr-predict", "--no-label", str(FIXTURES / "criteo_nolabel.txt"),
                  "--format", "json")
    assert nolabel.exit_code == 0, nolabel.output
    objs = [json.loads(line) for line in nolabel.stdout.splitlines()]
    assert [o["line"] for o in objs] == [1, 2] and set(objs[0]) == {"line", "probability"}
    # line 1 of the unlabelled file is line 1 of the labelled one without its label
    assert abs(objs[0]["probability"] - float(rows[0]["probability"])) < 1e-6
    # a large file: every line, in order
    big = rec(world, "ctr-predict", str(criteo_world / "train.txt"))
    lines = [int(r["line"]) for r in tsv(big.stdout)]
    assert lines == list(range(1, CRITEO_LINES + 1))


def test_predict_on_one_class_says_auc_is_undefined(criteo_world, criteo_trained, tmp_path):
    world = tmp_path / "w"
    shutil.copytree(criteo_world / "deepfm", world / "output")
    clicks = [line for line in (FIXTURES / "criteo_small.txt").read_text().splitlines(True)
              if line.split("\t")[0].strip() == "1"]
    for fmt in ("tsv", "json"):
        result = rec(world, "ctr-predict", "--format", fmt, "-", input="".join(clicks))
        assert result.exit_code == 0, result.output
        summary = result.stderr.splitlines()[-1]
        assert summary.startswith("2 lines: AUC undefined (every label is 1; it needs both 0 "
                                  "and 1), log loss "), summary
        assert "nan" not in result.stderr


def test_every_metric_is_the_kept_epochs(tmp_path):
    """The model's best epoch (2) is not the baseline's (3): the baseline's AUC and log loss
    shown are still epoch 2's, as in the history."""
    criteo_synthetic.generate(tmp_path / "c.txt", criteo_synthetic.SyntheticCriteoSpec(
        lines=2000, seed=3, max_cardinality=12, interactions=8, interaction_scale=1.5))
    result = rec(tmp_path, "ctr-train", "--input", str(tmp_path / "c.txt"), "--hash-size", "5000",
                 "--embedding-size", "8", "--hidden", "32,16", "--epochs", "4", "--batch-size",
                 "128", "--lr", "5e-2", "--baseline-lr", "5e-3", "--patience", "5",
                 "--format", "json")
    assert result.exit_code == 0, result.output
    m = json.loads(result.stdout)
    history = json.loads((tmp_path / "output" / "ctr" / "history.json").read_text())
    kept = history[m["best_epoch"] - 1]
    assert max(history, key=lambda h: h["baseline_auc"])["epoch"] != m["best_epoch"]
    assert {k: m[k] for k in ("auc", "logloss", "baseline_auc", "baseline_logloss")} == \
        {k: round(kept[k], 6) for k in ("auc", "logloss", "baseline_auc", "baseline_logloss")}


def test_predict_bad_line_is_one_clear_error(criteo_world, criteo_trained, tmp_path):
    world = tmp_path / "w"
    shutil.copytree(criteo_world / "deepfm", world / "output")
    result = rec(world, "ctr-predict", str(FIXTURES / "criteo_bad_hex.txt"))
    one_line_error(result, 2, "criteo_bad_hex.txt:3:", "C2 is not hexadecimal", "'xyz12345'")
    result = rec(world, "ctr-train", "--data", "criteo", "--input",
                 str(FIXTURES / "criteo_bad_hex.txt"))
    one_line_error(result, 2, "criteo_bad_hex.txt:3: C2 is not hexadecimal")


def test_predict_skip_bad_warns_per_line_and_scores_the_others(criteo_world, criteo_trained,
                                                                tmp_path):
    world = tmp_path / "w"
    shutil.copytree(criteo_world / "deepfm", world / "output")
    bad = FIXTURES / "criteo_bad_hex.txt"
    lines = bad.read_text().splitlines(keepends=True)
    # line 3 has a bad hex value, line 4 too many fields, line 6 a bad label
    text = "".join(lines[:3] + ["0" + "\t1" * 45 + "\n"] + lines[3:] + ["x" + lines[1]])
    result = rec(world, "ctr-predict", "--skip-bad", "-", input=text)
    assert result.exit_code == 0, result.output
    assert [r["line"] for r in tsv(result.stdout)] == ["1", "2", "5"]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert [w.split(":")[1:3] for w in warnings[:3]] == [[" stdin", "3"], [" stdin", "4"],
                                                         [" stdin", "6"]]
    assert warnings[0] == ("warning: stdin:3: C2 is not hexadecimal ('xyz12345'): "
                           "skipped (--skip-bad)")
    assert warnings[3:] == ["warning: 3 bad lines skipped, 3 scored"]


def test_vocab_transform_and_a_validation_file(criteo_world, tmp_path):
    world = tmp_path / "w"
    args = [*CRITEO_TRAIN, "--epochs", "1", "--categorical", "vocab", "--min-count", "3",
            "--input", str(criteo_world / "train.txt"), "--val-input",
            str(FIXTURES / "criteo_small.txt"), "--format", "json"]
    result = rec(world, "ctr-train", *args)
    assert result.exit_code == 0, result.output
    m = json.loads(result.stdout)
    assert m["train_samples"] == CRITEO_LINES and m["val_samples"] == 5
    assert (world / "output" / "ctr" / "model" / "vocab.npz").exists()
    pred = rec(world, "ctr-predict", str(FIXTURES / "criteo_small.txt"))
    assert pred.exit_code == 0, pred.output
    assert len(tsv(pred.stdout)) == 5


@pytest.mark.parametrize("model", ["deepfm", "wide_deep"])
def test_numpy_forward_matches_paddle_with_dense_features(criteo_world, criteo_trained, model):
    from rec.ctr import training as ct
    from rec.ctr.forward import NumpyCtr
    from rec.ctr.sources import Arrays
    from rec.paths import Paths

    net, config, transform = ct.load_model(Paths(criteo_world, criteo_world / model))
    chunk = read_all(criteo_world / "train.txt")
    arrays = Arrays({"ids": transform.ids(chunk), "dense": transform.dense(chunk)}, None)
    weights = {k: v.numpy() for k, v in net.state_dict().items()}
    from_numpy = NumpyCtr(config["model"], weights).probabilities(**arrays.inputs)
    np.testing.assert_allclose(from_numpy, ct.predict(net, arrays), atol=1e-5)


# --- MovieLens ------------------------------------------------------------------------------

ML_TRAIN = ["--epochs", "2", "--model", "wide_deep", "--batch-size", "1024"]


@pytest.fixture(scope="module")
def ml_world(tmp_path_factory) -> Path:
    """Synthetic MovieLens, preprocessed, a two-tower model and its features, a CTR model."""
    return run_stages(tmp_path_factory.mktemp("ml-ctr"),
                      ["download", "--dataset", "synthetic", "--users", "300", "--movies", "200",
                       "--ratings", "24000"], ["preprocess", "--dataset", "synthetic"],
                      ["train", "--epochs", "2"], ["save-features"], ["ctr-train", *ML_TRAIN])


@pytest.fixture
def ml_copy(ml_world, tmp_path) -> Path:
    shutil.copytree(ml_world, tmp_path / "w")
    return tmp_path / "w"


def test_movielens_metrics_include_baseline_and_recall_vs_rerank(ml_world):
    m = json.loads((ml_world / "output" / "ctr" / "model" / "metrics.json").read_text())
    assert m["data"] == "movielens" and m["model"] == "wide_deep"
    for key in ("auc", "logloss", "baseline_auc", "baseline_logloss", "recall_hr@10",
                "rerank_hr@10", "recall_ndcg@10", "rerank_ndcg@10"):
        assert isinstance(m[key], float), key
    assert 0.6 < m["auc"] <= 1 and m["rerank_candidates"] == 200
    assert 0 < m["recall_hr@10"] <= 1 and 0 < m["rerank_hr@10"] <= 1
    # the rank stage (trained on "watched and liked" against unrated movies) must help recall
    # (measured: HR@10 0.832 -> 0.852, NDCG@10 0.396 -> 0.457)
    assert m["rerank_hr@10"] >= m["recall_hr@10"]
    assert m["rerank_ndcg@10"] >= m["recall_ndcg@10"] + 0.03


def test_movielens_negatives_are_unrated_movies_drawn_per_epoch(ml_copy):
    """--negatives K: K label-0 samples per training rating, each a movie that user did not
    rate in training, drawn anew each epoch from (seed, epoch); validation negatives avoid
    every rated movie and are fixed by the seed."""
    import numpy as np
    from rec.ctr.sources import Arrays, MovieLensSource
    from rec.datasets.contract import load_dataset
    from rec.paths import Paths

    ds = load_dataset(Paths(ml_copy / "data", ml_copy / "output"))
    src = MovieLensSource(ds, crosses=False, negatives=3, seed=5)
    (tu, tm, _), _ = ds.train_val()
    n_movies = ds.n_movies
    rated_train = set((tu * n_movies + tm).tolist())
    rated_all = set((ds.rating_users * n_movies + ds.rating_movies).tolist())
    off = src.fields.offsets

    def pairs(arrays):
        ids = arrays.inputs["ids"]
        return ids[:, 0] - off[0], ids[:, 4] - off[4]

    epoch = lambda e: (lambda *more: np.random.default_rng([5, e, *more]))  # noqa: E731
    whole = lambda e: Arrays.concat(list(src.train_parts(epoch(e), 64)))  # noqa: E731
    first = whole(1)
    assert len(list(src.train_parts(epoch(1), 64))) > 1  # built a part at a time
    # ... the same samples in the same order as the whole epoch built and shuffled at once
    nu, nm = src._unrated(np.repeat(tu, 3), src.train_rated, epoch(1)(1))
    every = Arrays(src.fields.inputs(np.r_[tu, nu], np.r_[tm, nm]),
                   np.r_[src.train_pairs[2], np.zeros(len(nu), np.float32)])
    at_once = every.take(epoch(1)().permutation(len(every)))
    for key in at_once.inputs:
        np.testing.assert_array_equal(first.inputs[key], at_once.inputs[key])
    np.testing.assert_array_equal(first.labels, at_once.labels)
    u, m = pairs(first)
    neg = first.labels == 0
    drawn = neg & ~np.isin(u * n_movies + m, list(rated_train))
    assert len(first) == src.n_train and 2.9 * len(tu) < drawn.sum() <= 3 * len(tu)
    assert not (first.labels == 1)[np.isin(u * n_movies + m, list(rated_train), invert=True)].any()
    again = next(src.train_parts(epoch(1)))  # one part of 16 default batches: the same order
    np.testing.assert_array_equal(again.inputs["ids"], first.inputs["ids"][:len(again)])
    assert not np.array_equal(whole(2).inputs["ids"], first.inputs["ids"])
    vu, vm = pairs(src.validation())
    vneg = src.validation().labels == 0
    n_val = int((ds.split == 1).sum())
    extra = ~np.isin(vu * n_movies + vm, list(rated_all))
    assert 2.9 * n_val < extra.sum() <= 3 * n_val and not src.validation().labels[extra].any()
    assert vneg.sum() >= extra.sum()


def test_unrated_draws_are_the_same_from_the_table_and_the_sorted_keys(ml_copy, monkeypatch):
    """A small catalogue looks its rated pairs up in a table, a large one in sorted keys:
    the same draws, each an unrated movie (or dropped after four redraws)."""
    import numpy as np
    from rec.ctr import sources
    from rec.datasets.contract import load_dataset
    from rec.paths import Paths

    ds = load_dataset(Paths(ml_copy / "data", ml_copy / "output"))
    src = sources.MovieLensSource(ds, crosses=False, negatives=0)
    users = np.repeat(src.train_pairs[0], 5)
    table = src._unrated(users, src.train_rated, np.random.default_rng(3))
    monkeypatch.setattr(sources, "DENSE_RATED_KEYS", 0)
    keys = src._unrated(users, src.train_rated, np.random.default_rng(3))
    for a, b in zip(table, keys):
        np.testing.assert_array_equal(a, b)

    def every_entry_looked_up_each_round(users, rated, rng):  # the code before, as written
        def is_rated(movies):
            keys = users * ds.n_movies + movies
            return rated[np.minimum(np.searchsorted(rated, keys), len(rated) - 1)] == keys

        movies = rng.integers(0, ds.n_movies, size=len(users))
        for _ in range(4):
            hit = is_rated(movies)
            if not hit.any():
                break
            movies[hit] = rng.integers(0, ds.n_movies, size=int(hit.sum()))
        keep = ~is_rated(movies)
        return users[keep], movies[keep]

    before = every_entry_looked_up_each_round(users.astype(np.int64), src.train_rated,
                                              np.random.default_rng(3))
    for a, b in zip(table, before):
        np.testing.assert_array_equal(a, b)
    drawn = table[0].astype(np.int64) * ds.n_movies + table[1]
    assert 0.95 * len(users) < len(drawn) and not np.isin(drawn, src.train_rated).any()


@pytest.mark.parametrize("model", ["wide_deep", "deepfm"])
def test_numpy_forward_matches_paddle(ml_copy, model):
    from rec.ctr import training as ct
    from rec.ctr.forward import NumpyCtr
    from rec.ctr.sources import Arrays, MovieLensSource
    from rec.datasets.contract import load_dataset
    from rec.paths import Paths

    if model != "wide_deep":
        result = rec(ml_copy, "ctr-train", "--model", model, "--epochs", "1")
        assert result.exit_code == 0, result.output
    paths = Paths(ml_copy / "data", ml_copy / "output")
    net, config, _ = ct.load_model(paths)
    assert config["model"]["model"] == model and config["features"]["crosses"]
    source = MovieLensSource(load_dataset(paths), crosses=True)
    val = source.validation()
    from_paddle = ct.predict(net, val)
    folder = paths.ctr_dir / "model"
    from_numpy = NumpyCtr.load(folder / "weights.npz", config["model"]).probabilities(**val.inputs)
    np.testing.assert_allclose(from_numpy, from_paddle, atol=1e-5)


def test_predict_pairs_from_stdin_in_order(ml_world):
    result = rec(ml_world, "ctr-predict", input="user,movie\n3 7\n\n1\t2\t5\n3,7\n")
    assert result.exit_code == 0, result.output
    rows = tsv(result.stdout)
    assert [(r["line"], r["user"], r["movie"]) for r in rows] == \
        [("2", "3", "7"), ("4", "1", "2"), ("5", "3", "7")]
    assert rows[0]["probability"] == rows[2]["probability"]
    bad = rec(ml_world, "ctr-predict", input="1 2\n99999 2\n")
    one_line_error(bad, 2, "stdin:2: unknown user id 99999")
    bad = rec(ml_world, "ctr-predict", input="1 2\n1 two\n")
    one_line_error(bad, 2, "stdin:2: expected USER MOVIE")
    skipped = rec(ml_world, "ctr-predict", "--skip-bad", input="1 2\n99999 2\n1 two\n3 7\n")
    assert skipped.exit_code == 0, skipped.output
    assert [r["line"] for r in tsv(skipped.stdout)] == ["1", "4"]
    assert skipped.stderr == ("warning: stdin:2: unknown user id 99999: skipped (--skip-bad)\n"
                              "warning: stdin:3: expected USER MOVIE (two ids), got '1 two': "
                              "skipped (--skip-bad)\n"
                              "warning: 2 bad lines skipped, 2 scored\n")


@pytest.mark.parametrize("model", [None, "wide_deep"])
def test_predict_from_a_closed_stdin_is_one_line(ml_world, criteo_world, criteo_trained, model):
    """`rec ctr-predict <&-` (stdin, '-', the default) was an internal error: sys.stdin is
    None (an adversarial trial's find): MovieLens pairs, and Criteo lines (model given)."""
    import subprocess
    import sys

    out = ml_world / "output" if model is None else criteo_world / model
    proc = subprocess.run([sys.executable, "-m", "rec", "--output-dir", str(out),
                           "--data-dir", str(ml_world / "data"), "ctr-predict"],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)},
                          preexec_fn=lambda: os.close(0))
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        2, "", "error: standard input is closed: pipe or redirect what `-` reads into it\n")


def test_predict_names_a_bad_line_by_its_file_or_stdin(ml_world, tmp_path):
    # as recommend's ids and --rated name theirs: "stdin:2", "FILE:2" (was "line 2")
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("1 2\n99999 2\n")
    for args, where in (([str(pairs)], f"{pairs}:2"), (["-"], "stdin:2")):
        result = rec(ml_world, "ctr-predict", *args, input=pairs.read_text())
        assert (result.exit_code, result.stdout, result.stderr) == \
            (2, "", f"error: {where}: unknown user id 99999\n")


NOT_A_PAIR = "expected USER MOVIE (two ids), got"


@pytest.mark.parametrize("text,error", [
    ("foo\n", f"stdin:1: {NOT_A_PAIR} 'foo'"),  # was taken for a header: no row, exit 0
    ("1\n", f"stdin:1: {NOT_A_PAIR} '1'"),
    ("foo\n1 2\n", f"stdin:1: {NOT_A_PAIR} 'foo'"),  # line 1 was dropped unseen
    ("1.5 2.5\n1 2\n", f"stdin:1: {NOT_A_PAIR} '1.5 2.5'"),  # digits: no header
    ("1 2\nuser movie\n", f"stdin:2: {NOT_A_PAIR} 'user movie'"),  # a header is line 1
    ("\nuser movie\n1 2\n", f"stdin:2: {NOT_A_PAIR} 'user movie'"),
])
def test_predict_refuses_a_first_line_that_is_no_header(ml_world, text, error):
    result = rec(ml_world, "ctr-predict", input=text)
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"error: {error}\n")


@pytest.mark.parametrize("header", ["user movie", "user_id\tmovie_id", '"userId","movieId"',
                                    "\ufeffUser, Movie", "user\tmovie\trating"])
def test_predict_skips_a_header_of_names_on_line_1(ml_world, header):
    plain = rec(ml_world, "ctr-predict", input="1 2\n3 7\n")
    assert plain.exit_code == 0, plain.output
    title, *rows = plain.stdout.splitlines()
    # the same rows, each a line further down
    shifted = [f"{int(row.split(chr(9))[0]) + 1}\t{row.split(chr(9), 1)[1]}" for row in rows]
    result = rec(ml_world, "ctr-predict", input=f"{header}\n1 2\n3 7\n")
    assert (result.exit_code, result.stdout.splitlines(), result.stderr) == \
        (0, [title, *shifted], "")


def test_skip_bad_skips_a_first_line_that_is_no_header_and_says_so(ml_world):
    result = rec(ml_world, "ctr-predict", "--skip-bad", input="foo\n1 2\n")
    assert result.exit_code == 0, result.output
    assert [r["line"] for r in tsv(result.stdout)] == ["2"]
    assert result.stderr == (f"warning: stdin:1: {NOT_A_PAIR} 'foo': skipped (--skip-bad)\n"
                             "warning: 1 bad line skipped, 1 scored\n")


def piped_path(text: str) -> tuple[str, int]:
    """A path that reads `text` from a pipe, as bash's `<(printf ...)` gives one
    (/dev/fd/N), and the pipe's read end, for the caller to close."""
    if not Path("/dev/fd").is_dir():
        pytest.skip("no /dev/fd on this system")
    read, write = os.pipe()
    os.write(write, text.encode())  # a few bytes: the pipe's buffer holds them
    os.close(write)
    return f"/dev/fd/{read}", read


def test_predict_reads_pairs_from_any_readable_path(ml_world, tmp_path):
    # a regular-file test refused these as "no such file: /dev/fd/63" and "/dev/null"
    expected = rec(ml_world, "ctr-predict", input="1 2\n3 7\n")
    assert expected.exit_code == 0 and expected.stdout.count("\n") == 3, expected.output
    path, read = piped_path("1 2\n3 7\n")
    try:
        piped = rec(ml_world, "ctr-predict", path)
    finally:
        os.close(read)
    assert (piped.exit_code, piped.stdout, piped.stderr) == (0, expected.stdout, "")
    empty = rec(ml_world, "ctr-predict", "/dev/null")
    assert (empty.exit_code, empty.stdout, empty.stderr) == \
        (0, "line\tuser\tmovie\tprobability\n", "")


def test_predict_refuses_a_missing_path_and_a_folder_in_one_line(ml_world, tmp_path):
    for path, message in ((tmp_path / "nope.txt", f"no such file: {tmp_path / 'nope.txt'}"),
                          (tmp_path, f"{tmp_path} is a folder, not a file")):
        result = rec(ml_world, "ctr-predict", str(path))
        assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"error: {message}\n")


def test_predict_reads_criteo_lines_from_a_pipe(criteo_world, criteo_trained, tmp_path):
    world = tmp_path / "w"
    shutil.copytree(criteo_world / "deepfm", world / "output")
    text = (FIXTURES / "criteo_small.txt").read_text()
    expected = rec(world, "ctr-predict", "-", input=text)
    assert expected.exit_code == 0, expected.output
    path, read = piped_path(text)
    try:
        piped = rec(world, "ctr-predict", path)
    finally:
        os.close(read)
    assert (piped.exit_code, piped.stdout, piped.stderr) == (0, expected.stdout, expected.stderr)


def test_same_seed_same_result_and_resume_matches(ml_copy, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(ml_copy, other)
    shutil.rmtree(other / "output" / "ctr")
    assert rec(other, "ctr-train", *ML_TRAIN[2:], "--epochs", "1").exit_code == 0
    result = rec(other, "ctr-train", "--resume", "--epochs", "2")
    assert result.exit_code == 0, result.output
    assert "resuming after epoch 1" in result.stderr
    a = json.loads((ml_copy / "output" / "ctr" / "history.json").read_text())
    b = json.loads((other / "output" / "ctr" / "history.json").read_text())
    assert [h["epoch"] for h in b] == [1, 2]
    for ha, hb in zip(a, b):
        for key in ("train_loss", "auc", "logloss", "baseline_auc"):
            assert abs(ha[key] - hb[key]) < 1e-6, key
    ctr_dir = other / "output" / "ctr"
    assert not [p for p in ctr_dir.rglob(".*")]  # no temporary leftovers


def test_ctrl_c_keeps_the_last_complete_checkpoint(ml_copy, monkeypatch):
    from rec.ctr import training as ct

    real, calls = ct.scores, {"n": 0}

    def interrupt_in_second_validation(*args):
        calls["n"] += 1
        if calls["n"] == 3:  # two calls per epoch: the model's, the baseline's
            raise KeyboardInterrupt
        return real(*args)

    shutil.rmtree(ml_copy / "output" / "ctr")
    monkeypatch.setattr(ct, "scores", interrupt_in_second_validation)
    result = rec(ml_copy, "ctr-train", *ML_TRAIN)
    assert result.exit_code == 130 and "Traceback" not in result.stderr
    ctr_dir = ml_copy / "output" / "ctr"
    assert json.loads((ctr_dir / "checkpoint" / "state.json").read_text())["epoch"] == 1
    # an interrupted run publishes nothing: its best so far waits, staged, for --resume
    assert not (ctr_dir / "model").exists()
    assert (ctr_dir / "best-of-run" / "weights.npz").exists()
    assert not [p for p in ctr_dir.rglob(".*")]
    monkeypatch.setattr(ct, "scores", real)
    result = rec(ml_copy, "ctr-train", "--resume", "--epochs", "2")
    assert result.exit_code == 0, result.output
    assert json.loads((ctr_dir / "model" / "metrics.json").read_text())["epochs_run"] == 2
    assert (ctr_dir / "model" / "weights.npz").exists() and not (ctr_dir / "best-of-run").exists()


@pytest.mark.parametrize("args,code,needle", [
    (["ctr-train", "--data", "criteo"], 2, "--data criteo needs --input"),
    (["ctr-train", "--model", "fm"], 2, "unknown --model 'fm'"),
    (["ctr-train", "--data", "tsv"], 2, "unknown --data 'tsv'"),
    (["ctr-train", "--input", "/nonexistent/x.txt"], 2, "no such file: /nonexistent/x.txt"),
    (["ctr-train", "--data", "criteo", "--input", "/dev/null"], 2,
     "/dev/null is not a file: ctr-train reads its Criteo lines again every epoch"),
    (["ctr-train", "--hidden", "12,x"], 2, "--hidden must be layer sizes"),
    (["ctr-train", "--resume"], 2, "nothing to resume"),
    (["ctr-predict", "/nonexistent/x.txt"], 2, "no such file"),
    (["ctr-train", "--lr", "nan"], 2, "--lr must be a positive number (got nan)"),
    # the rank stage (movielens' default) had recorded these as applied, changing nothing
    (["ctr-train", "--dropout", "0.5", "--batch-size", "64", "--no-crosses"], 2,
     "--batch-size, --dropout, --no-crosses: for the CTR models (--model wide_deep or deepfm)"),
    (["ctr-train", "--data", "movielens", "--model", "rank", "--negatives", "9"], 2,
     "--negatives: for the CTR models"),
])
def test_bad_usage_is_one_line(tmp_path, args, code, needle):
    one_line_error(rec(tmp_path, *args), code, needle)


def test_missing_inputs_name_the_stage_to_run(tmp_path, ml_world):
    one_line_error(rec(tmp_path, "ctr-train"), 2, "rec preprocess")
    one_line_error(rec(tmp_path, "ctr-predict"), 2, "rec ctr-train")


def test_damaged_model_files_are_one_clear_error(ml_copy):
    # used to be "internal error: JSONDecodeError" / "BadZipFile"
    model_dir = ml_copy / "output" / "ctr" / "model"
    (model_dir / "config.json").write_text("[1, 2]")
    one_line_error(rec(ml_copy, "ctr-predict", input="1 1\n"), 1, "config.json is damaged",
                   "run `rec ctr-train` again")


def test_gpu_on_cpu_build_is_a_clear_usage_error(ml_world, tmp_path):
    import paddle

    if paddle.is_compiled_with_cuda():
        pytest.skip("this paddle is a CUDA build")
    result = rec(tmp_path, "ctr-train", "--device", "gpu", "--data", "criteo", "--input",
                 str(FIXTURES / "criteo_small.txt"))
    one_line_error(result, 2, "paddlepaddle-gpu", "CPU-only")


def test_numpy_export_that_disagrees_with_the_model_is_refused(ml_copy, monkeypatch):
    from rec.ctr.forward import NumpyCtr

    weights = ml_copy / "output" / "ctr" / "model" / "weights.npz"
    before = weights.read_bytes()
    real = NumpyCtr.logits
    monkeypatch.setattr(NumpyCtr, "logits", lambda self, *a, **kw: real(self, *a, **kw) + 0.5)
    one_line_error(rec(ml_copy, "ctr-train", *ML_TRAIN), 1, "weights.npz", "disagrees")
    assert weights.read_bytes() == before  # the last good model stays whole


def test_predict_says_which_input_the_model_expects(ml_world, criteo_world, criteo_trained,
                                                    tmp_path):
    # Criteo lines to a MovieLens model: not "line 1: unknown user id 0"
    criteo_lines = (FIXTURES / "criteo_small.txt").read_text()
    result = rec(ml_world, "ctr-predict", input=criteo_lines)
    one_line_error(result, 2, "stdin:1: a Criteo line", "a MovieLens model",
                   "USER MOVIE pairs")
    # USER MOVIE pairs (with or without a header) to a Criteo model
    world = tmp_path / "w"
    shutil.copytree(criteo_world / "deepfm", world / "output")
    for pairs in ("1 2\n3 7\n", "user,movie\n1 2\n"):
        result = rec(world, "ctr-predict", input=pairs)
        one_line_error(result, 2, "stdin:1:", "a Criteo model", "raw Criteo lines",
                       "--data movielens")


def test_resume_refuses_a_checkpoint_validated_on_the_evaluation_split(ml_copy):
    """An older rec trained Wide&Deep on every training rating and chose its epochs on the
    evaluation split; its checkpoint's best AUC is not the tuning slice's to compare with."""
    state_file = ml_copy / "output" / "ctr" / "checkpoint" / "state.json"
    state = json.loads(state_file.read_text())
    assert state["data_fingerprint"].endswith("+tuning-view")
    state["data_fingerprint"] = state["data_fingerprint"][:-len("+tuning-view")]  # as before
    state_file.write_text(json.dumps(state))
    result = rec(ml_copy, "ctr-train", "--resume", "--epochs", "5")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "changed since the checkpoint was written: train from scratch" in result.stderr


def test_resume_refuses_another_model(ml_copy):
    result = rec(ml_copy, "ctr-train", "--resume", "--epochs", "5", "--model", "deepfm")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "--model deepfm (the checkpoint's: wide_deep)" in result.stderr
