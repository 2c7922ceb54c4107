"""`rec recommend` / `rec similar` on synthetic data with planted tastes.

The feature files are written straight from the planted truth (no training): a movie's taste
vector is its genre indicator, a user's vector weighs their favourite genre, plus a quality
bias slot. So the right answers are known: a user's top-N should be their favourite genre.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from rec.datasets.contract import load_dataset
from rec.datasets.movielens import parse_folder
from rec.datasets.synthetic import SyntheticSpec, generate
from rec.twotower.features import load_features, save_features
from rec.paths import Paths
from rec.twotower.reasons import explain, stars
from rec.twotower.recommending import ChunkRatings, Picks, build_catalog, display_title, find_users
from rec.datasets.build import build, write_dataset
from rec.stages.recommend import RECOMMEND_COLUMNS, SIMILAR_COLUMNS

from conftest import assert_paddle_free, rec, reseal

FAVOURITE_WEIGHT = 3.0  # puts the favourite genre ahead of any movie quality (sd 0.45)


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """Synthetic data, its preprocessed dataset and feature files built from the truth."""
    root = tmp_path_factory.mktemp("recommend")
    paths = Paths(root / "data", root / "output")
    folder = paths.raw("synthetic")
    generate(folder, SyntheticSpec(users=300, movies=200, ratings=12000, seed=1))
    arrays, vocab, _ = build(parse_folder(folder), "synthetic", "random", 0.1, 42)
    write_dataset(paths.dataset_dir, arrays, vocab)
    truth = json.loads((folder / "truth.json").read_text())

    n_genres = len(vocab.genres) - 1
    genre_onehot = np.zeros((len(vocab.movie_ids), n_genres + 1), np.float32)
    for m, row in enumerate(arrays["movie_genres.npy"]):
        genre_onehot[m, row[row > 0] - 1] = 1.0
    genre_onehot /= np.linalg.norm(genre_onehot, axis=1, keepdims=True)
    genre_onehot[:, n_genres] = [truth["movie_quality"][str(i)] for i in vocab.movie_ids]
    users = np.zeros((len(vocab.user_ids), n_genres + 1), np.float32)
    for u, uid in enumerate(vocab.user_ids):
        users[u, vocab.genres.index(truth["favourite_genre"][str(uid)]) - 1] = FAVOURITE_WEIGHT
    users[:, n_genres] = 1.0
    save_features(paths.features_dir, vocab.user_ids, users, vocab.movie_ids, genre_onehot,
                  {"match": "dot", "scale": 1.0, "offset": 3.5, "clip": [1, 5],
                   "taste_dims": n_genres})

    dataset = load_dataset(paths)
    genres_of = {vocab.movie_ids[m]: {vocab.genres[g] for g in row if g}
                 for m, row in enumerate(arrays["movie_genres.npy"])}
    rated = {}  # raw user id -> {raw movie id: rating}, train and validation alike
    for u, m, r in zip(dataset.rating_users, dataset.rating_movies, dataset.rating_values):
        rated.setdefault(vocab.user_ids[u], {})[vocab.movie_ids[m]] = float(r)
    return {"paths": paths, "vocab": vocab, "truth": truth, "rated": rated,
            "genres_of": genres_of, "favourite": {int(k): v for k, v in
                                                  truth["favourite_genre"].items()}}


def run(world, *args, input=None):
    return rec(world["paths"].output_dir.parent, *args, input=input)


def tsv(result) -> list[dict]:
    lines = result.stdout.splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:]]


def assert_usage_error(result, message: str):
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr


# --- recommend ------------------------------------------------------------------------------


def test_a_top_beyond_the_catalogue_says_what_limits_it(world):
    genres = world["vocab"].genres[1:]
    result = run(world, "recommend", "7", "--top", "1000000")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[-1] == (
        "warning: 1 of 1 users got fewer than 200 movies: the catalogue has 200 movies, less "
        "each user's seen movies")
    result = run(world, "recommend", "7", "--top", "1000000", "--genre", genres[0])
    allowed = sum(genres[0] in r["genres"].split("|") for r in
                  tsv(run(world, "recommend", "7", "--top", "200", "--include-seen")))
    assert result.stderr.splitlines()[-1] == (
        f"warning: 1 of 1 users got fewer than 200 movies: the filters allow {allowed} of the "
        "catalogue's 200 movies, less each user's seen movies")


def test_top_n_is_dominated_by_the_planted_favourite_genre(world):
    users = list(range(1, 21))
    result = run(world, "recommend", *map(str, users), "--top", "10")
    assert result.exit_code == 0, result.output
    rows = tsv(result)
    hits = [world["favourite"][int(r["user"])] in r["genres"].split("|") for r in rows]
    assert len(rows) == 200
    assert np.mean(hits) >= 0.95, np.mean(hits)


def test_seen_movies_never_appear_unless_asked(world):
    result = run(world, "recommend", "--all", "--top", "15")
    assert result.exit_code == 0, result.output
    rows = tsv(result)
    assert len(rows) == 300 * 15
    assert not any(int(r["movie"]) in world["rated"][int(r["user"])] for r in rows)

    result = run(world, "recommend", "--all", "--top", "15", "--include-seen")
    seen = [r for r in tsv(result) if int(r["movie"]) in world["rated"][int(r["user"])]]
    assert seen, "a planted favourite genre should put some rated movies back in the top 15"
    for r in seen:
        assert r["reason"] == f"you rated it {stars(world['rated'][int(r['user'])][int(r['movie'])])}"


def test_tsv_has_the_columns_and_n_rows_per_user_in_the_order_given(world):
    result = run(world, "recommend", "7", "3", "250", "--top", "4")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # no progress or logs, even on stderr, for a clean run
    lines = result.stdout.splitlines()
    assert lines[0].split("\t") == RECOMMEND_COLUMNS
    assert all(len(line.split("\t")) == len(RECOMMEND_COLUMNS) for line in lines)
    rows = tsv(result)
    assert [(r["user"], r["rank"]) for r in rows] == [(u, str(k)) for u in ("7", "3", "250")
                                                      for k in range(1, 5)]
    titles = dict(zip(world["vocab"].movie_ids, world["vocab"].titles))
    for r in rows:
        assert r["title"] == titles[int(r["movie"])]
        assert r["year"] == r["title"][-5:-1]
        assert 1.0 <= float(r["stars"]) <= 5.0  # predicted rating, clipped to the range
        assert r["reason"]
    scores = [float(r["score"]) for r in rows[:4]]  # the order: pick and like combined
    assert scores == sorted(scores, reverse=True)


def test_json_lines_parse(world):
    result = run(world, "recommend", "5", "--top", "3", "--format", "json")
    assert result.exit_code == 0, result.output
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(objects) == 3 and all(list(o) == RECOMMEND_COLUMNS for o in objects)
    assert [o["rank"] for o in objects] == [1, 2, 3]
    assert all(o["user"] == 5 and isinstance(o["movie"], int) and isinstance(o["score"], float)
               for o in objects)


def test_ids_from_stdin(world):
    result = run(world, "recommend", "-", "--top", "2", input="12\n  9\n\n12\n")
    assert result.exit_code == 0, result.output
    assert [r["user"] for r in tsv(result)] == ["12", "12", "9", "9"]  # each user once
    assert result.stderr == "warning: each user is listed once (repeated ids left out: 1)\n"
    assert run(world, "recommend", "12", "9", "--top", "2").stderr == ""  # none repeated
    # a line that is no id is named, as --rated names its lines (a header, say)
    result = run(world, "recommend", "-", input="12\n\n9 user\n")
    assert_usage_error(result, "error: stdin:3: not a user id: 'user'\n")


def test_because_you_rated_names_a_movie_the_user_liked(world):
    """Rated at least 3 stars, and 4 (RELEVANT) or at least the user's own average."""
    result = run(world, "recommend", "--all", "--top", "10")
    by_title = {display_title(t): m for m, t in zip(world["vocab"].movie_ids, world["vocab"].titles)}
    checked = 0
    for r in tsv(result):
        if r["reason"].startswith("because you rated "):
            title, count, _ = r["reason"][len("because you rated "):].rsplit(" ", 2)
            mine = world["rated"][int(r["user"])]
            rating = mine.get(by_title[title])
            assert rating is not None and f"{rating:g}" == count, r
            assert rating >= 3 and rating >= min(np.mean(list(mine.values())), 4), r
            checked += 1
    assert checked > 100


def test_a_four_star_movie_is_liked_even_by_a_generous_rater(world):
    """Heat 5 and Aladdin 4 (mean 4.5): the animated picks were explained by Heat alone, a 4
    under the user's own average not counting as liked."""
    from rec.twotower.reasons import _closest_liked

    cat = build_catalog(load_features(world["paths"].features_dir), load_dataset(world["paths"]))
    pick = 2
    cosines = cat.taste @ cat.taste[pick]
    cosines[pick] = np.nan
    near, far = int(np.nanargmax(cosines)), int(np.nanargmin(cosines))
    picks = Picks(movies=np.array([[pick]]), scores=np.zeros((1, 1), np.float32),
                  stars=np.zeros((1, 1), np.float32), explored=np.zeros((1, 1), bool),
                  counts=np.array([1]))
    ratings = ChunkRatings(pos=np.array([0, 0]), movie=np.array([far, near]),
                           value=np.array([5.0, 4.0], np.float32))  # best rating first
    _, movie, rating = _closest_liked(cat, picks, ratings, np.array([4.5]))
    assert (movie[0, 0], rating[0, 0]) == (near, 4.0)


def test_reasons_use_genre_and_group_evidence_and_stay_honest_without_ratings(world):
    paths = world["paths"]
    cat = build_catalog(load_features(paths.features_dir), load_dataset(paths))
    user = find_users(cat, ["10"])
    comedy = cat.genre_names.index("Comedy")
    comedies = np.flatnonzero((cat.movie_genres == comedy).any(axis=1))
    others = np.flatnonzero(~(cat.movie_genres == comedy).any(axis=1))
    pick = Picks(movies=np.array([[comedies[0]]]), scores=np.array([[4.0]], np.float32),
                 stars=np.array([[4.0]], np.float32), explored=np.array([[False]]), counts=np.array([1]))

    # comedies at 3 stars, the rest at 1: no liked movie, but Comedy is above their average
    movies = np.r_[comedies[1:5], others[:6]]
    values = np.r_[np.full(4, 3.0), np.full(6, 1.0)].astype(np.float32)
    ratings = ChunkRatings(np.zeros(10, np.int64), movies, values)
    assert explain(cat, user, pick, ratings) == [["you like Comedies"]]

    # nothing rated: the group rates the pick far above its mean -> "popular with ..."
    nobody = ChunkRatings(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    mates = np.flatnonzero(cat.user_group == cat.user_group[user[0]])
    movie = comedies[0]
    fans = dataclasses.replace(cat, rating_user=np.r_[cat.rating_user, np.repeat(mates, 10)],
                               rating_movie=np.r_[cat.rating_movie, np.full(10 * len(mates), movie)],
                               rating_value=np.r_[cat.rating_value, np.full(10 * len(mates), 5.0)],
                               movie_mean=np.full(cat.n_movies, 2.0, np.float32))
    age = cat.age_labels[cat.user_age[user[0]]]
    assert explain(fans, user, pick, nobody)[0][0].startswith(f"popular with {age} year-old")
    # and without that evidence the fallback says what the prediction rests on
    assert explain(cat, user, pick, nobody)[0][0] in {"highly rated overall",
                                                     "predicted from your age and occupation"}


def test_explore_keeps_the_best_and_draws_the_rest_reproducibly(world):
    plain = tsv(run(world, "recommend", "8", "--top", "6"))
    a = tsv(run(world, "recommend", "8", "--top", "6", "--explore", "2", "--seed", "3"))
    b = tsv(run(world, "recommend", "8", "--top", "6", "--explore", "2", "--seed", "3"))
    assert a == b and len(a) == 6
    assert [r["movie"] for r in a[:4]] == [r["movie"] for r in plain[:4]]
    assert all(r["reason"].endswith("a random pick for variety") for r in a[4:])
    # the same user gets the same draw when asked among others
    together = tsv(run(world, "recommend", "2", "8", "--top", "6", "--explore", "2", "--seed", "3"))
    assert [r["movie"] for r in together if r["user"] == "8"] == [r["movie"] for r in a]
    draws = {tuple(r["movie"] for r in tsv(run(world, "recommend", "8", "--top", "6",
                                                "--explore", "2", "--seed", str(s))))
             for s in range(6)}
    assert len(draws) > 1


def test_genre_and_year_filters(world):
    rows = tsv(run(world, "recommend", "4", "6", "--top", "5", "--genre", "comedy",
                   "--year-from", "1950", "--year-to", "1990"))
    assert len(rows) == 10
    assert all("Comedy" in r["genres"].split("|") and 1950 <= int(r["year"]) <= 1990 for r in rows)


@pytest.mark.parametrize("args, message", [
    (["99999"], "unknown user id 99999"),
    (["abc"], "not a user id: 'abc'"),
    (["1", "--top", "0"], "--top must be at least 1"),
    (["1", "--top", "-3"], "--top must be at least 1"),
    (["1", "--explore", "11"], "--explore must be between 0 and --top 10"),
    (["1", "--explore", "-1"], "--explore must be between"),
    (["1", "--year-from", "2000", "--year-to", "1990"], "--year-from 2000 is after --year-to 1990"),
    (["1", "--genre", "Cartoons"], "unknown genre 'Cartoons'"),
    (["1", "--format", "xml"], "unknown --format 'xml'"),
    ([], "give user ids (- reads them from stdin), --all, or a new user's movies (--rated "
         "FILE, --like MOVIE, --dislike MOVIE)"),
    (["1", "--all"], "not both"),
])
def test_bad_usage_exits_2_with_one_line_and_empty_stdout(world, args, message):
    assert_usage_error(run(world, "recommend", *args), message)


def test_unknown_id_among_good_ones_prints_nothing(world):
    assert_usage_error(run(world, "recommend", "-", input="1\n2\n77777\n"), "unknown user id 77777")


def test_features_are_read_from_their_matrices_and_are_the_pickles(world, tmp_path,
                                                                   monkeypatch):
    """save-features writes the vectors twice: the course's pickles and float32 matrices
    (start-up time: the pickles rebuild one array per id). rec reads the matrices when the
    unit lists them, else the pickles; either way the same vectors."""
    import pickle
    import shutil

    from rec.storage import unit
    from rec.twotower import features as features_module

    folder = Path(shutil.copytree(world["paths"].features_dir, tmp_path / "features"))
    pickled = {name: pickle.loads((folder / f"{name}_feat.pkl").read_bytes())
               for name in ("usr", "mov")}
    with monkeypatch.context() as m:  # the pickles are not read at all
        m.setattr(features_module, "safe_load_pickle", lambda path: pytest.fail(str(path)))
        feats = load_features(folder)
    assert feats.user_ids == list(pickled["usr"]) and feats.movie_ids == list(pickled["mov"])
    assert feats.users.dtype == np.float32 and feats.users.shape == (300, 19)
    assert np.array_equal(feats.users, np.stack(list(pickled["usr"].values())))
    assert np.array_equal(feats.movies, np.stack(list(pickled["mov"].values())))

    # a folder written before the matrices: read from the pickles, the same vectors
    record = json.loads((folder / unit.UNIT).read_text())
    for name in ("usr_feat.npy", "mov_feat.npy", "feat_ids.json"):
        (folder / name).unlink()
        del record["sha256"][name]
    (folder / unit.UNIT).write_text(json.dumps(record))
    old = load_features(folder)
    assert old.user_ids == feats.user_ids and np.array_equal(old.users, feats.users)
    assert np.array_equal(old.movies, feats.movies)

    # matrices the unit does not list (copied in from elsewhere) are not read
    np.save(folder / "usr_feat.npy", np.zeros_like(feats.users))
    (folder / "feat_ids.json").write_text(json.dumps({"users": old.user_ids,
                                                      "movies": old.movie_ids}))
    np.save(folder / "mov_feat.npy", np.zeros_like(feats.movies))
    assert np.array_equal(load_features(folder).users, feats.users)


@pytest.mark.parametrize("name,damage,code,needle", [
    ("usr_feat.npy", lambda p: p.write_bytes(b"not a matrix"), 1,
     "usr_feat.npy: not a valid matrix"),
    ("mov_feat.npy", lambda p: np.save(p, np.zeros((3, 2), np.float32)), 1,
     "mov_feat.npy: expected 200 float32 vectors, one per id in feat_ids.json"),
    ("feat_ids.json", lambda p: p.write_text("[]"), 1, "feat_ids.json: not a valid list of ids"),
    ("usr_feat.npy", lambda p: np.save(p, np.load(p) * 2), 2,  # valid, but of another run
     "usr_feat.npy is not the one written with the rest): run `rec save-features` again"),
])
def test_damaged_feature_matrices_are_one_clear_error(world, tmp_path, name, damage, code,
                                                      needle):
    import shutil

    out = Path(shutil.copytree(world["paths"].output_dir, tmp_path / "out"))
    damage(out / "features" / name)
    result = rec(None, "--output-dir", str(out), "recommend", "1")
    assert result.exit_code == code and result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert needle in result.stderr
    assert result.stderr.endswith("run `rec save-features` again\n")  # the stage to rerun


def test_missing_feature_files_exit_2(tmp_path):
    """An empty output folder names every stage still to run, the first one first: from
    download, unless the folder's manifest records one; a folder of features without its
    files names the file."""
    result = rec(None, "--output-dir", str(tmp_path), "recommend", "1")
    assert_usage_error(result, f"missing {tmp_path / 'features'} (the saved vectors): run "
                       "`rec download`, `rec preprocess`, `rec train` and `rec save-features` "
                       "first")
    (tmp_path / "manifest.json").write_text('{"stages": {"download": {}}}')
    result = rec(None, "--output-dir", str(tmp_path), "similar", "Toy Story")
    assert_usage_error(result, "(the saved vectors): run `rec preprocess`, `rec train` and "
                               "`rec save-features` first")
    result = rec(None, "--output-dir", str(tmp_path), "history", "1")
    assert_usage_error(result, f"missing {tmp_path / 'dataset'}: run `rec preprocess` first")
    (tmp_path / "features").mkdir()
    result = rec(None, "--output-dir", str(tmp_path), "recommend", "1")
    assert_usage_error(result, "features/usr_feat.pkl: run `rec preprocess`, `rec train` and "
                               "`rec save-features` first")
    (tmp_path / "manifest.json").unlink()
    result = rec(None, "--output-dir", str(tmp_path), "evaluate")
    assert_usage_error(result, f"missing {tmp_path / 'dataset'}: run `rec download` and "
                               "`rec preprocess` first")


def test_missing_features_beside_a_trained_model_name_save_features_alone(world, tmp_path):
    import shutil

    out = Path(shutil.copytree(world["paths"].output_dir, tmp_path / "out"))
    shutil.rmtree(out / "features")
    (out / "model" / "best").mkdir(parents=True)  # this world's vectors come from its truth
    result = rec(None, "--output-dir", str(out), "recommend", "1")
    assert_usage_error(result, "features (the saved vectors): run `rec save-features` first")


def test_unknown_users_and_movies_say_what_to_give_instead(world):
    result = run(world, "recommend", "999999")
    assert_usage_error(result, "unknown user id 999999 (the dataset's ")
    assert "for someone new, give their movies: --like, --rated)" in result.stderr
    title = world["vocab"].titles[9]  # e.g. "A Musical1 10 (1983)"
    near = run(world, "similar", title[:5] + "q" + title[5:-7])  # a typo
    assert_usage_error(near, "; did you mean '")  # the typo's title among the suggestions
    for query, needle in (("", "an empty movie: give a movie id or (part of) its title"),
                          ("zzqqxx", "no movie title contains 'zzqqxx'; give a movie id")):
        assert_usage_error(run(world, "similar", query), needle)


@pytest.mark.parametrize("name,damage,needle", [
    ("vocab.json", lambda p: p.write_text("garbage{"), "vocab.json is damaged (JSONDecodeError"),
    ("vocab.json", lambda p: p.write_text("[1, 2]"), "vocab.json is damaged (ValueError"),
    ("movie_titles.npy", lambda p: p.write_bytes(p.read_bytes()[:-40]), "movie_titles.npy is damaged"),
    ("split.npy", lambda p: np.save(p, np.zeros(3, np.uint8)), "split.npy does not fit the rest"),
])
def test_damaged_dataset_file_is_one_clear_error(world, tmp_path, name, damage, needle):
    # these used to end in "internal error: JSONDecodeError / ValueError ..."
    import shutil

    out = Path(shutil.copytree(world["paths"].output_dir, tmp_path / "out"))
    damage(out / "dataset" / name)
    result = rec(None, "--output-dir", str(out), "recommend", "1")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert needle in result.stderr and "run `rec preprocess` again" in result.stderr


def test_stale_features_are_detected_not_shown_with_wrong_titles(world, tmp_path):
    # features from one dataset, output/dataset preprocessed from another: this used to
    # print rows with the other dataset's titles, or blank ones
    import shutil

    paths = Paths(tmp_path / "data", Path(shutil.copytree(world["paths"].output_dir,
                                                          tmp_path / "out")))
    folder = paths.raw("synthetic")
    generate(folder, SyntheticSpec(users=150, movies=120, ratings=3000, seed=2))
    arrays, vocab, _ = build(parse_folder(folder), "synthetic", "random", 0.1, 42)
    write_dataset(paths.dataset_dir, arrays, vocab)
    args = ["--output-dir", str(paths.output_dir)]
    for command in (["recommend", "--all"], ["similar", "1"]):
        assert_usage_error(rec(None, *args, *command),
                           "describe different users or movies: run `rec save-features` again")
    # the same ids but preprocessed again: save-features records which dataset it read
    shutil.rmtree(paths.dataset_dir)
    shutil.copytree(world["paths"].dataset_dir, paths.dataset_dir)
    scoring = json.loads((paths.features_dir / "scoring.json").read_text())
    (paths.features_dir / "scoring.json").write_text(json.dumps(
        {**scoring, "dataset_fingerprint": "another"}))
    reseal(paths.features_dir)  # as save-features from that dataset would have written it
    assert_usage_error(rec(None, *args, "recommend", "1"),
                       "saved from another output/dataset")


def test_recommend_never_imports_paddle(world):
    # nor pydantic, nor rich in a pipe (start-up time: tests/test_startup.py)
    assert_paddle_free(["--output-dir", str(world["paths"].output_dir), "recommend", "1",
                        "--top", "2", "--format", "tsv"],
                       forbidden=("paddle", "pydantic", "rich", "importlib.metadata"))
    # --all without a rank model: the two-tower's order, neither scipy (the rank stage's
    # EASE products, preloaded when there is one) nor the rank stage's modules
    assert_paddle_free(["--output-dir", str(world["paths"].output_dir), "recommend", "--all",
                        "--top", "2", "--format", "tsv"],
                       forbidden=("paddle", "scipy", "rec.rank.serving"))


# --- similar --------------------------------------------------------------------------------


def test_taste_similarity_ignores_a_direction_every_movie_shares(world):
    """Reasons ("because you rated X", from a cosine of 0.5) and `similar` compare movies by
    the cosine of their taste vectors less the catalogue's mean vector: a vector added to
    every movie changes neither. Without the centring such a shared direction puts every
    pair above 0.5 (ml-latest-small's trained vectors: mean pairwise cosine 0.88)."""
    paths = world["paths"]
    features = load_features(paths.features_dir, item_models=False)
    dataset = load_dataset(paths)
    plain = build_catalog(features, dataset)
    k = int(features.scoring["taste_dims"])
    shared = np.zeros(features.movies.shape[1], np.float32)
    shared[:k] = 3.0
    shifted = build_catalog(dataclasses.replace(features, movies=features.movies + shared),
                            dataset)
    np.testing.assert_allclose(shifted.taste, plain.taste, atol=1e-5)
    raw = (features.movies + shared)[:, :k]
    raw = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    assert (raw @ raw.T).min() > 0.5  # what the uncentred cosine would have said
    assert ((plain.taste @ plain.taste.T) < 0.5).mean() > 0.5


def test_similar_by_id_ranks_movies_sharing_the_genres(world):
    result = run(world, "similar", "5", "--top", "5")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].split("\t") == SIMILAR_COLUMNS
    rows = tsv(result)
    assert len(rows) == 5 and all(r["query"] == "5" and r["movie"] != "5" for r in rows)
    sims = [float(r["similarity"]) for r in rows]
    assert sims == sorted(sims, reverse=True)
    assert world["genres_of"][int(rows[0]["movie"])] & world["genres_of"][5]


def test_similar_s_table_names_one_query_in_its_title_once(world):
    title = world["vocab"].titles[4]
    table = run(world, "similar", "5", "--top", "3", "--format", "table").stdout.splitlines()
    from rec.twotower.titles import shown_title

    assert table[0].strip() == f"similar to movie 5, {shown_title(title)}"  # as rows say it
    assert "query" not in table[1]  # not "· query 5", nor a column of 5s
    both = run(world, "similar", "5", "6", "--top", "2", "--format", "table").stdout
    assert both.splitlines()[0].strip() == "similar movies" and "query" in both


def test_similar_by_title(world):
    vocab = world["vocab"]
    title = vocab.titles[9]  # e.g. "A Musical1 10 (1983)"
    by_substring = tsv(run(world, "similar", title[2:-7].upper(), "--top", "3"))
    assert [r["query"] for r in by_substring] == [str(vocab.movie_ids[9])] * 3
    # an exact title (without its year) wins even when other titles contain it
    exact = tsv(run(world, "similar", title[:-7], "--top", "1", "--format", "tsv"))
    assert exact[0]["query"] == str(vocab.movie_ids[9])


def test_similar_ambiguous_or_unknown_titles_exit_2(world):
    result = run(world, "similar", "the")
    assert_usage_error(result, "'the' matches")
    assert "give a movie id" in result.stderr
    assert_usage_error(run(world, "similar", "no such film"), "no movie title contains 'no such film'")
    assert_usage_error(run(world, "similar", "424242"), "unknown movie id 424242")


def test_negative_and_sparse_ids_print_as_numbers_and_sort_numerically():
    from types import SimpleNamespace

    from rec.stages.recommend import _plain_id
    from rec.twotower.recommending import all_users

    assert [_plain_id(i) for i in ("-5", "12", "u7")] == [-5, 12, "u7"]
    cat = SimpleNamespace(features=SimpleNamespace(user_ids=["10", "-5", "2", "x", "1000"]))
    assert [cat.features.user_ids[r] for r in all_users(cat)] == ["-5", "2", "10", "1000", "x"]


def test_all_users_in_small_chunks_get_the_lists_of_one_chunk(world, monkeypatch):
    """--all scores chunk_users users at a time (fewer on a large catalogue, to bound its
    (users x catalogue) arrays): how many go together changes no list, no reason."""
    from rec.twotower import recommending

    whole = run(world, "recommend", "--all", "--top", "5")
    assert whole.exit_code == 0 and len(tsv(whole)) > 500
    # the reasons too: a user's cosines to their liked movies are BLAS products whose bits
    # depend on their shape, which depended on the users beside them (rec.twotower.reasons)
    for size in (7, 1):  # 1: each user alone, as `rec recommend 9`
        monkeypatch.setattr(recommending, "CHUNK_USERS", size)
        chunked = run(world, "recommend", "--all", "--top", "5")
        assert chunked.exit_code == 0 and chunked.stdout == whole.stdout, size
    monkeypatch.undo()
    assert recommending.chunk_users(3_883) == 960  # ml-1m: 1,024 in whole lanes
    assert recommending.chunk_users(62_000) == 96  # ml-25m: 32 MiB per array at most


def test_reasons_explained_in_threads_are_the_reasons_explained_in_turn(world):
    """recommend --all explains chunks in its scoring threads: the group statistics each
    fills in (Catalog.group_stats, shared) must come out as they do one chunk after another."""
    from concurrent.futures import ThreadPoolExecutor

    from rec.stages.recommend import load_catalog
    from rec.twotower.reasons import explain
    from rec.twotower.recommending import all_users, chunk_ratings, recommend_chunk

    def reasons(cat, chunk):
        ratings = chunk_ratings(cat, chunk)
        picks = recommend_chunk(cat, chunk, ratings, 10, np.ones(cat.n_movies, bool))
        return explain(cat, chunk, picks, ratings)

    cat = load_catalog(world["paths"])
    users = all_users(cat)
    chunks = [users[i:i + 7] for i in range(0, len(users), 7)]
    in_turn = [reasons(cat, chunk) for chunk in chunks]
    for _ in range(3):
        fresh = load_catalog(world["paths"])
        with ThreadPoolExecutor(4) as pool:
            assert list(pool.map(lambda chunk: reasons(fresh, chunk), chunks)) == in_turn


def test_a_liked_movie_close_to_everything_is_not_every_picks_reason():
    """A hub (The Sixth Sense on ml-1m was 'because you rated' for 9 of some users' 10
    picks) yields to the next liked movie that also qualifies, REPEAT_COST a citation; not
    to one that does not qualify, nor to one further away than the cost."""
    from rec.twotower.reasons import REPEAT_COST, SIMILAR_MIN, _spread_citations

    # one user, 6 picks; likes: 0 the hub, 1 a close second, 2 below SIMILAR_MIN
    sims = np.array([[[0.90, 0.85, 0.45]] * 6], np.float32)
    cited = _spread_citations(sims, np.ones((1, 6), bool))[0].tolist()
    assert cited == [0, 1, 0, 1, 0, 1]  # alternates: 0.90 - 0.1 < 0.85
    far = np.array([[[0.90, 0.90 - 3.5 * REPEAT_COST, 0.45]] * 6], np.float32)
    assert _spread_citations(far, np.ones((1, 6), bool))[0].tolist() == [0, 0, 0, 0, 1, 0]
    alone = np.array([[[0.90, SIMILAR_MIN - 0.01, 0.45]] * 4], np.float32)
    assert _spread_citations(alone, np.ones((1, 4), bool))[0].tolist() == [0, 0, 0, 0]
    # below SIMILAR_MIN nothing qualifies: the closest, as before, whatever was cited
    weak = np.array([[[0.40, 0.35, 0.30]] * 3], np.float32)
    assert _spread_citations(weak, np.ones((1, 3), bool))[0].tolist() == [0, 0, 0]


@pytest.mark.parametrize("name", ["feat_ids.json", "usr_feat.npy", "mov_feat.npy"])
def test_a_vector_file_missing_from_the_features_names_it_and_the_stage(world, tmp_path, name):
    """These used to end in an internal error (FileNotFoundError) when save-features had
    listed them: the pickles and scoring.json were checked, not the matrices."""
    import shutil

    out = Path(shutil.copytree(world["paths"].output_dir, tmp_path / "out"))
    if not (out / "features" / name).exists():
        pytest.skip(f"this world's features have no {name}")
    (out / "features" / name).unlink()
    result = rec(None, "--output-dir", str(out), "recommend", "1")
    assert_usage_error(result, f"missing {out / 'features' / name}: run `rec save-features` again")


# --- history --------------------------------------------------------------------------------


def test_history_lists_a_users_ratings_best_first_then_the_latest(world):
    ds = load_dataset(world["paths"])
    v = ds.vocab
    u = 7
    mine = np.flatnonzero(ds.rating_users == v.user_ids.index(u))
    rows = tsv(run(world, "history", str(u), "--top", "0"))
    assert len(rows) == len(mine) and [r["rank"] for r in rows] == [str(i + 1) for i in range(len(mine))]
    got = [(float(r["stars"]), r["date"]) for r in rows]
    assert got == sorted(got, key=lambda g: (-g[0], tuple(-int(x) for x in g[1].split("-"))))
    by_movie = {v.movie_ids[m]: float(r) for m, r in zip(ds.rating_movies[mine], ds.rating_values[mine])}
    assert {int(r["movie"]): float(r["stars"]) for r in rows} == by_movie
    assert set(r["part"] for r in rows) <= {"train", "eval"}
    assert len(tsv(run(world, "history", str(u), "--top", "3"))) == 3


def test_history_parts_and_recent_order(world):
    everything = tsv(run(world, "history", "7", "--top", "0"))
    train = tsv(run(world, "history", "7", "--top", "0", "--part", "train"))
    held = tsv(run(world, "history", "7", "--top", "0", "--part", "eval"))
    assert tsv(run(world, "history", "7", "--top", "0", "--part", "validation")) == held
    assert {r["part"] for r in train} == {"train"} and {r["part"] for r in held} <= {"eval"}
    assert sorted(r["movie"] for r in train + held) == sorted(r["movie"] for r in everything)
    recent = [r["date"] for r in tsv(run(world, "history", "7", "--sort", "recent", "--top", "0"))]
    assert recent == sorted(recent, reverse=True)
    two = tsv(run(world, "history", "-", "--top", "1", input="3\n9\n"))
    assert [r["user"] for r in two] == ["3", "9"]


@pytest.mark.parametrize("args,message", [
    (["99999"], "unknown user id 99999 (the dataset's "),
    (["7", "--sort", "x"], "unknown --sort 'x': choose stars or recent"),
    (["7", "--part", "val"], "unknown --part 'val': choose all, train or eval (validation)"),
    (["7", "--top", "-1"], "--top must be 0 (all) or more (got -1)"),
])
def test_history_bad_input_is_one_line(world, args, message):
    assert_usage_error(run(world, "history", *args), message)


def test_a_list_does_not_give_one_reason_ten_times():
    """The group's reason ("popular with 25-34 year-old ...") strongest for every pick was
    9 of some users' 10 reasons: each repeat costs REPEAT_COST, so one that also
    qualifies takes over; a kind that does not qualify (-inf) never does."""
    from rec.twotower.reasons import GENRE, GROUP, REPEAT_COST, SIMILAR, _spread_kinds

    n = 6
    strength = np.zeros((2, n, 3), np.float32)
    strength[..., SIMILAR] = [0.55, 0.55, 0.55, 0.55, 0.55, 0.55]
    strength[..., GENRE] = -np.inf
    strength[..., GROUP] = 0.7
    strength[1, :, SIMILAR] = -np.inf  # user 1: the group is all there is
    liked = np.array([[1, 2, 3, 4, 5, 6]] * 2)  # a different liked movie each time
    kind = _spread_kinds(strength, liked, np.zeros((2, n), np.int64))
    assert kind[0].tolist() == [GROUP, GROUP] + [SIMILAR] * 4  # 0.7 - 2 x 0.1 < 0.55
    assert kind[1].tolist() == [GROUP] * n
    assert REPEAT_COST == 0.1
