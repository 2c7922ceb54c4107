"""A user who is not in the dataset (fold-in): `rec recommend --rated/--like/--dislike`.

One synthetic world with planted tastes, trained once with the default model. The user
tower is linear in its inputs after the embeddings, so folding in a known user's own
training ratings must give back their saved vector up to float32 rounding (the test allows
1e-4, far below the spread between users)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_paddle_free, rec


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("foldin")
    for stage in (["download", "--dataset", "synthetic"], ["preprocess", "--dataset", "synthetic"],
                  ["train", "--select", "last", "--epochs", "8"], ["save-features"]):
        result = rec(root, *stage)
        assert result.exit_code == 0, result.stderr
    return root


def rows(result) -> list[dict]:
    assert result.exit_code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def dataset(root: Path):
    from rec.datasets.contract import load_dataset
    from rec.paths import Paths

    return load_dataset(Paths(root / "data", root / "output"))


def test_fold_in_of_a_trained_users_own_ratings_gives_their_saved_vector(trained):
    assert_fold_in_gives_saved_vectors(trained)


def assert_fold_in_gives_saved_vectors(trained: Path) -> None:
    """Folding in a few known users' own training ratings gives back their saved vectors
    (also used by tests/test_sampled.py)."""
    from rec.datasets.contract import TRAIN
    from rec.twotower.features import load_features
    from rec.twotower.foldin import FOLD_IN, load_parts, user_vector

    ds = dataset(trained)
    feats = load_features(trained / "output" / "features")
    parts = load_parts(trained / "output" / "features", len(feats.movie_ids),
                       feats.extra[FOLD_IN])
    train = np.asarray(ds.split) == TRAIN
    for user in (0, 7, 123, ds.n_users - 1):
        mine = train & (np.asarray(ds.rating_users) == user)
        g, a, o = ds.users[user, 1:4]
        vec = user_vector(parts, np.asarray(ds.rating_movies)[mine],
                          np.asarray(ds.rating_values)[mine], feats.scoring["offset"], g, a, o)
        saved = feats.users[feats.user_row()[str(ds.vocab.user_ids[user])]]
        np.testing.assert_allclose(vec, saved, atol=1e-4)
        assert vec @ saved / np.linalg.norm(vec) / np.linalg.norm(saved) > 0.9999


GENRE_SHARES = {}


@pytest.mark.parametrize("name", ["Western", "Comedy", "Musical"])
def test_a_new_user_who_likes_five_movies_of_a_genre_gets_that_genre(trained, name):
    """The five liked movies are the genre's most telling: those its planted fans rate far
    more often than others do (the most popular ones everybody rates say little). Each
    genre gets into the top 10 above its share of the catalogue; over the three genres, more
    than half the slots (measured: Comedy 0.9, Musical 0.8, Western 0.1; chance about 0.07)."""
    ds = dataset(trained)
    v = ds.vocab
    truth = json.loads((trained / "data" / "synthetic" / "truth.json").read_text())
    fan = np.array([truth["favourite_genre"][str(u)] == name for u in v.user_ids])
    genre = v.genres.index(name)
    users, movies = np.asarray(ds.rating_users), np.asarray(ds.rating_movies)
    by_fans = np.bincount(movies[fan[users]], minlength=ds.n_movies) / max(fan.sum(), 1)
    by_others = np.bincount(movies[~fan[users]], minlength=ds.n_movies) / max((~fan).sum(), 1)
    of_genre = np.flatnonzero((ds.movie_genres == genre).any(axis=1))
    liked = of_genre[np.argsort(-(by_fans - by_others)[of_genre])][:5]
    args = [a for m in liked for a in ("--like", str(v.movie_ids[m]))]
    top = rows(rec(trained, "recommend", *args, "--top", "10", "--format", "json"))
    assert len(top) == 10 and all(r["user"] == "new" for r in top)
    share = np.mean([name in r["genres"].split("|") for r in top])
    chance = (len(of_genre) - 5) / (ds.n_movies - 5)
    GENRE_SHARES[name] = share
    assert share >= 0.1 and share > chance
    if len(GENRE_SHARES) == 3:
        assert np.mean(list(GENRE_SHARES.values())) > 0.5, GENRE_SHARES
    assert not {r["movie"] for r in top} & {v.movie_ids[m] for m in liked}  # given = seen
    titles = {v.titles[m].rsplit(" (", 1)[0] for m in liked}
    cited = [r["reason"] for r in top if r["reason"].startswith("because you ")]
    assert cited and all(any(t in reason for t in titles) for reason in cited)
    # --like gave them: "liked", not "rated ... 5 stars"
    assert all(reason.startswith("because you liked ") for reason in cited), cited


def test_rated_file_with_titles_and_demographics(trained, tmp_path):
    ds = dataset(trained)
    v = ds.vocab
    lines = [f"{v.titles[0]}\t5", f"{v.movie_ids[1]}\t1", "# a comment", "", f"{v.movie_ids[2]} 4"]
    (tmp_path / "mine.tsv").write_text("\n".join(lines) + "\n")
    top = rows(rec(trained, "recommend", "--rated", str(tmp_path / "mine.tsv"), "--gender", "F",
                   "--age", "25", "--occupation", "programmer", "--format", "json"))
    assert len(top) == 10 and {v.movie_ids[i] for i in range(3)}.isdisjoint(r["movie"] for r in top)
    stdin = rows(rec(trained, "recommend", "--rated", "-", "--gender", "F", "--age", "25-34",
                     "--occupation", "12", "--format", "json", input="\n".join(lines)))
    assert [r["movie"] for r in stdin] == [r["movie"] for r in top]  # codes = labels


@pytest.mark.parametrize("args,needle", [
    (["--like", "no such movie at all"], "no movie title contains 'no such movie at all'"),
    (["--like", "99999999"], "unknown movie id 99999999"),
    (["--rated", "-"], "no ratings in it"),
    (["--like", "1", "--age", "200"], "unknown --age '200'"),
    (["--like", "1", "42"], "give no user ids"),
    (["--age", "25"], "go with --rated"),
])
def test_new_user_errors_are_one_line_exit_2(trained, args, needle):
    result = rec(trained, "recommend", *args, input="")
    assert result.exit_code == 2 and result.stdout == ""
    assert needle in result.stderr and result.stderr.count("\n") == 1


def test_a_rated_line_without_a_tab_that_is_a_whole_title_is_refused(trained, tmp_path):
    """'Toy Story 2' is not Toy Story rated 2 stars: a line whose whole text is a title's
    name asks for the tab; one that is not ('TITLE 4') still splits at its last space."""
    ds = dataset(trained)
    title = next(t for t in ds.vocab.titles if t.split(" (")[0][-1].isdigit())  # 'X Drama2 125 (1979)'
    name = title.split(" (")[0]
    (tmp_path / "mine.tsv").write_text(f"{name}\n")
    result = rec(trained, "recommend", "--rated", str(tmp_path / "mine.tsv"))
    assert result.exit_code == 2 and result.stderr == (
        f"error: {tmp_path / 'mine.tsv'}:1: '{name}' is a movie title too: put a tab between "
        "the movie and its rating\n")
    (tmp_path / "mine.tsv").write_text(f"{name} 4\n{name}\t4\n")
    assert rec(trained, "recommend", "--rated", str(tmp_path / "mine.tsv")).exit_code == 0


def test_bad_rating_lines_name_the_line(trained, tmp_path):
    (tmp_path / "bad.tsv").write_text("1\t5\n2\tmany\n")
    result = rec(trained, "recommend", "--rated", str(tmp_path / "bad.tsv"))
    assert result.exit_code == 2 and result.stderr == (  # the rating is named as the fault
        f"error: {tmp_path / 'bad.tsv'}:2: the rating 'many' is not a number (expected "
        "'movie<TAB>rating', e.g. 'Toy Story<TAB>5')\n")
    (tmp_path / "bad.tsv").write_text("1\t9\n")
    result = rec(trained, "recommend", "--rated", str(tmp_path / "bad.tsv"))
    assert result.exit_code == 2 and result.stderr == (
        f"error: {tmp_path / 'bad.tsv'}:1: rating 9 for '1' is outside this dataset's scale, "
        "1 to 5\n")
    (tmp_path / "bad.tsv").write_text("1\t5\nno such movie at all\t4\n")
    result = rec(trained, "recommend", "--rated", str(tmp_path / "bad.tsv"))
    assert result.exit_code == 2 and result.stderr.startswith(
        f"error: {tmp_path / 'bad.tsv'}:2: no movie title contains 'no such movie at all'")
    result = rec(trained, "recommend", "--rated", str(tmp_path / "missing.tsv"))
    assert result.exit_code == 2 and result.stderr == (
        f"error: cannot read --rated {tmp_path / 'missing.tsv'}: No such file or directory\n")


def test_a_rating_model_cannot_fold_in(trained, tmp_path):
    other = tmp_path / "w"
    shutil.copytree(trained, other)
    assert rec(other, "train", "--match", "dot", "--epochs", "1").exit_code == 0
    assert rec(other, "save-features").exit_code == 0
    result = rec(other, "recommend", "--like", "1")
    assert result.exit_code == 2 and "needs the default model" in result.stderr


def test_new_user_recommend_never_imports_paddle(trained):
    out = str(trained / "output")
    assert_paddle_free(["--output-dir", out, "recommend", "--like", "1", "--like", "2",
                        "--format", "tsv"])


def test_a_new_users_ratings_count_as_rated_in_the_order_given(trained, tmp_path):
    """The rank stage reads a user's latest ratings (rec.rank.features.recent): a new
    user's are their lines in order, then --like, then --dislike, after every rating of
    the dataset."""
    from rec.paths import Paths
    from rec.stages.recommend import load_catalog
    from rec.twotower.foldin import fold_in_user

    ds = dataset(trained)
    ids = [str(m) for m in ds.vocab.movie_ids[:4]]
    rated = tmp_path / "r.tsv"
    rated.write_text(f"{ids[2]}\t4\n{ids[0]}\t2\n")
    paths = Paths(trained / "data", trained / "output")
    cat = load_catalog(paths, False)
    latest = int(cat.rating_time.max())
    row = fold_in_user(paths, cat, str(rated), [ids[3]], [ids[1]], None, None, None)
    mine = np.flatnonzero(cat.rating_user == row)
    order = mine[np.argsort(cat.rating_time[mine])]
    movie_ids = [str(cat.features.movie_ids[m]) for m in cat.rating_movie[order]]
    assert movie_ids == [ids[2], ids[0], ids[3], ids[1]]
    assert cat.rating_time[mine].min() > latest


def test_rated_lines_with_a_timestamp_are_taken_in_time_order():
    """A ratings file's own lines (movie, rating, time) were read as 'rating 8.8e+08'."""
    from rec.errors import UsageError
    from rec.twotower.foldin import parse_rated

    got = parse_rated("10\t4\t300\n# c\n20\t5\t100\n30\t3\t200\n", "f")
    assert [(m, r) for m, r, _ in got] == [("20", 5.0), ("30", 3.0), ("10", 4.0)]
    assert [w for _, _, w in got] == ["f:3", "f:4", "f:1"]  # the lines they came from
    untimed = parse_rated("10\t4\t300\n20\t5\n", "f")  # not every line timed: as given
    assert [m for m, _, _ in untimed] == ["10", "20"]
    for bad in ("noon", "nan", "inf"):
        with pytest.raises(UsageError, match=rf"f:1: the third column '{bad}' is not a timestamp"):
            parse_rated(f"10\t4\t{bad}\n", "f")
    aligned = parse_rated("Toy Story\t\t5\n", "f")  # two tabs to align the columns
    assert [(m, r) for m, r, _ in aligned] == [("Toy Story", 5.0)]


def test_a_spreadsheets_csv_lines_are_movie_and_rating():
    """'Aladdin,5' (a spreadsheet's CSV) was refused as "expected 'movie<TAB>rating'";
    a title's own commas stay in it, quoted or not; the decimal comma after a space and
    'movie rating' keep their meaning."""
    from rec.errors import UsageError
    from rec.twotower.foldin import parse_rated

    def read(text):
        return [(m, r) for m, r, _ in parse_rated(text, "f")]

    assert read("movie,rating\nAladdin,5\n1,4\nToy Story, 3\n") == [
        ("Aladdin", 5.0), ("1", 4.0), ("Toy Story", 3.0)]
    assert read('American President, The (1995),4\n"American President, The (1995)",2.5\n') == [
        ("American President, The (1995)", 4.0), ("American President, The (1995)", 2.5)]
    assert read("Heat,5,300\nAladdin,4,100\n") == [("Aladdin", 4.0), ("Heat", 5.0)]  # timed
    assert read("Toy Story 4,5\nAladdin 5\nHeat\t4,5\nAmerican President, 4,5\n") == [
        ("Toy Story", 4.5), ("Aladdin", 5.0), ("Heat", 4.5), ("American President,", 4.5)]
    # under a comma-separated header every line is CSV: a title ending in a number stays whole
    assert read('"movie","rating"\nToy Story 2,5\nApollo 13,4\nHeat,"4,5"\nAladdin,3,\n') == [
        ("Toy Story 2", 5.0), ("Apollo 13", 4.0), ("Heat", 4.5), ("Aladdin", 3.0)]
    with pytest.raises(UsageError, match=r"f:1: expected 'movie<TAB>rating' \(or "
                       r"'movie,rating'\), got 'Heat,five'"):
        parse_rated("Heat,five\n", "f")


def test_a_first_line_of_column_names_is_a_header_not_a_movie():
    """A spreadsheet's 'movie<TAB>rating' first line was refused as a rating that is not a
    number (ctr-predict skipped its own header); any other line of names still is."""
    from rec.errors import UsageError
    from rec.twotower.foldin import parse_rated

    for header in ("movie\trating", "# mine\nTitle\tStars\tTimestamp", "Movie ID\tRating\n"):
        got = parse_rated(f"{header}\nHeat\t5\t9\nAladdin\t4\t8\n", "f")
        assert [(m, r) for m, r, _ in got] == [("Aladdin", 4.0), ("Heat", 5.0)]
    with pytest.raises(UsageError, match=r"f:2: the rating 'rating' is not a number"):
        parse_rated("Heat\t5\nmovie\trating\n", "f")  # a second line of names: an error
    with pytest.raises(UsageError, match=r"f:1: the rating 'five' is not a number"):
        parse_rated("Heat\tfive\n", "f")  # names, but not a header's
