"""What a person types for a new user (`--rated`, `--like`, `--dislike`, `similar`, ids on
stdin, `ctr-predict` pairs), and each dataset's own scales: ratings in halves, no
demographics, its own age and occupation codes.

Three tiny worlds, each trained for one epoch: the synthetic data (ml-1m's layout, one
title made accented and one given an alternate title), the same data written as ml-latest
(half stars, no demographics) and as ml-100k (ages in years, occupations by name)."""

from __future__ import annotations

import csv
import json
import re
import shutil
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, SMALL, one_line_error, rec

ACCENTED = "Misérables, Les (1995)"  # movie 1's title in the synthetic world
# movie 3's: an alternate title in parentheses, with its own article moved to the end
ALTERNATE = "Good, the Bad and the Ugly, The (Buono, il brutto, il cattivo, Il) (1966)"


def build(root: Path, dataset: str, *extra: list[str]) -> Path:
    for args in (["preprocess", "--dataset", dataset], ["train", "--epochs", "1"],
                 ["save-features"], *extra):
        result = rec(root, *args)
        assert result.exit_code == 0, (args, result.output)
    return root


def synthetic_raw(root: Path) -> Path:
    assert rec(root, "download", "--dataset", "synthetic", *SMALL).exit_code == 0
    return root / "data" / "synthetic"


@pytest.fixture(scope="module")
def ml1m(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ml1m")
    movies = synthetic_raw(root) / "movies.dat"
    lines = movies.read_text(encoding="latin-1").splitlines()
    for row, title in ((0, ACCENTED), (2, ALTERNATE)):
        movie, _, genres = lines[row].split("::")
        lines[row] = "::".join([movie, title, genres])
    movies.write_text("\n".join(lines) + "\n", encoding="latin-1")
    return build(root, "synthetic", ["ctr-train", "--model", "wide_deep", "--epochs", "1"])


def _synthetic_tables(root: Path):
    raw = synthetic_raw(root)
    read = lambda name: [line.split("::") for line in  # noqa: E731
                         (raw / name).read_text(encoding="latin-1").splitlines()]
    return read("users.dat"), read("movies.dat"), read("ratings.dat")


@pytest.fixture(scope="module")
def latest(tmp_path_factory) -> Path:
    """ml-latest's layout: half stars (user u's ratings lowered by a half when u is odd,
    so 0.5 occurs), no users file."""
    root = tmp_path_factory.mktemp("latest")
    _, movies, ratings = _synthetic_tables(root)
    folder = root / "data" / "ml-latest-small"
    folder.mkdir()
    with open(folder / "movies.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["movieId", "title", "genres"])
        w.writerows(movies)
    with open(folder / "ratings.csv", "w", newline="") as f:
        f.write("userId,movieId,rating,timestamp\n")
        for u, m, r, t in ratings:
            f.write(f"{u},{m},{int(r) - 0.5 * (int(u) % 2):g},{t}\n")
    return build(root, "ml-latest-small")


@pytest.fixture(scope="module")
def ml100k(tmp_path_factory) -> Path:
    """ml-100k's layout: ages in years, occupations by name (u.occupation)."""
    from rec.datasets.contract import GENRES

    root = tmp_path_factory.mktemp("ml100k")
    users, movies, ratings = _synthetic_tables(root)
    folder = root / "data" / "ml-100k"
    folder.mkdir()
    jobs = ["administrator", "artist", "doctor", "engineer", "programmer", "writer"]
    (folder / "u.occupation").write_text("\n".join(jobs) + "\n")
    (folder / "u.user").write_text("".join(
        f"{u}|{20 + int(u) % 40}|{g}|{jobs[int(u) % len(jobs)]}|10000\n" for u, g, *_ in users))
    (folder / "u.item").write_text("".join(
        f"{m}|{t}|01-Jan-1995||http://x|0|" + "|".join(
            "1" if name in g.split("|") else "0" for name in GENRES) + "\n"
        for m, t, g in movies))
    (folder / "u.data").write_text("".join(f"{u}\t{m}\t{r}\t{t}\n" for u, m, r, t in ratings))
    return build(root, "ml-100k")


def vocab(root: Path) -> dict:
    return json.loads((root / "output" / "dataset" / "vocab.json").read_text())


def recommend(root: Path, *args: str, input: str | None = None) -> str:
    result = rec(root, "recommend", *args, "--format", "tsv", input=input)
    assert result.exit_code == 0, result.output
    return result.stdout


def profile(root: Path, n: int = 4) -> list[str]:
    """n 'movie<TAB>rating' lines of movies 2.. by id."""
    ids = vocab(root)["movie_ids"]
    return [f"{ids[i]}\t{5 - i % 4}" for i in range(1, n + 1)]


# --- byte-order marks ------------------------------------------------------------------------


def test_a_byte_order_mark_before_the_first_rated_line_is_ignored(ml1m, tmp_path):
    lines = "\n".join(profile(ml1m)) + "\n"
    plain = recommend(ml1m, "--rated", "-", input=lines)
    assert plain.count("\n") == 11
    assert recommend(ml1m, "--rated", "-", input="\ufeff" + lines) == plain
    (tmp_path / "bom.tsv").write_bytes(b"\xef\xbb\xbf" + lines.encode())
    assert recommend(ml1m, "--rated", str(tmp_path / "bom.tsv")) == plain
    # two files concatenated: a mark mid-stream
    halves = profile(ml1m)
    both = "\ufeff" + "\n".join(halves[:2]) + "\n\ufeff" + "\n".join(halves[2:]) + "\n"
    assert recommend(ml1m, "--rated", "-", input=both) == plain


def test_a_rated_file_saved_as_utf16_is_read_and_other_encodings_are_refused(ml1m, tmp_path):
    lines = "\n".join(profile(ml1m)) + "\n"
    plain = recommend(ml1m, "--rated", "-", input=lines)
    (tmp_path / "u16.tsv").write_bytes(lines.encode("utf-16"))  # with its byte-order mark
    assert recommend(ml1m, "--rated", str(tmp_path / "u16.tsv")) == plain
    (tmp_path / "latin1.tsv").write_bytes(f"{ACCENTED}\t5\n".encode("latin-1"))
    error = one_line_error(rec(ml1m, "recommend", "--rated", str(tmp_path / "latin1.tsv")), 2)
    assert error == (f"error: --rated {tmp_path / 'latin1.tsv'} is not UTF-8 text (byte 0xe9 "
                     "at offset 3): save it as UTF-8")


def test_a_decimal_comma_is_a_decimal_point(latest):
    ids = vocab(latest)["movie_ids"]
    assert recommend(latest, "--rated", "-", input=f"{ids[1]}\t4,5\n{ids[2]} 0,5\n") == \
        recommend(latest, "--rated", "-", input=f"{ids[1]}\t4.5\n{ids[2]} 0.5\n")


def test_user_ids_and_movie_queries_on_stdin_after_a_byte_order_mark_are_read(ml1m):
    assert recommend(ml1m, "-", input="\ufeff1\n2\n") == recommend(ml1m, "1", "2")
    similar = rec(ml1m, "similar", "-", "--format", "tsv", input="\ufeff2\n")
    assert similar.exit_code == 0 and similar.stdout == rec(ml1m, "similar", "2", "--format",
                                                            "tsv").stdout


def test_ctr_predict_scores_the_first_pair_after_a_byte_order_mark(ml1m):
    pairs = "1 2\n1 3\n2 4\n"
    plain = rec(ml1m, "ctr-predict", input=pairs)
    assert plain.exit_code == 0 and plain.stdout.count("\n") == 4  # header + 3 rows
    marked = rec(ml1m, "ctr-predict", input="\ufeff" + pairs)
    assert marked.exit_code == 0 and marked.stdout == plain.stdout


# --- titles: Unicode forms and case ----------------------------------------------------------


@pytest.mark.parametrize("typed", [ACCENTED, unicodedata.normalize("NFD", ACCENTED),
                                   "MISE\u0301RABLES", "les misérables", "misérables, LES",
                                   "Les\u00a0Misérables", " les   MISÉRABLES\t",
                                   "Les Misérables (1995)", "les miserables",
                                   "MISERABLES, LES (1995)"])
def test_titles_match_in_any_unicode_form_and_case(ml1m, typed):
    movie = vocab(ml1m)["movie_ids"][0]
    by_id = recommend(ml1m, "--like", str(movie))
    assert recommend(ml1m, "--like", typed) == by_id
    similar = rec(ml1m, "similar", typed, "--format", "tsv")
    assert similar.exit_code == 0, similar.output
    assert similar.stdout == rec(ml1m, "similar", str(movie), "--format", "tsv").stdout


def test_an_unknown_title_is_shown_as_normalised_text(ml1m):
    error = one_line_error(rec(ml1m, "similar", "Mise\u0301rables 2"), 2)
    assert error.startswith("error: no movie title contains 'Misérables 2'; did you mean '")


def test_titles_are_looked_up_through_one_index_built_once(ml1m, monkeypatch):
    """1,000 title lines cost about what 1,000 ids cost: the index of every title is built
    once for the whole profile, not rescanned per line (README: measured figures)."""
    from rec.twotower import titles

    built = []
    real = titles.TitleIndex.__init__

    def counting(self, names):
        built.append(len(names))
        real(self, names)

    monkeypatch.setattr(titles.TitleIndex, "__init__", counting)
    v = vocab(ml1m)
    lines = [f"{t}\t{1 + i % 5}" for i, t in enumerate(v["titles"][1:41])]
    assert recommend(ml1m, "--rated", "-", input="\n".join(lines)).count("\n") == 11
    assert built == [len(v["titles"])]


# --- contradictions --------------------------------------------------------------------------


def test_a_movie_liked_and_disliked_is_refused_naming_both(ml1m):
    """Named as every list shows it: "Les Misérables (1995)", not the file's "Misérables,
    Les (1995)"."""
    error = one_line_error(rec(ml1m, "recommend", "--like", ACCENTED, "--dislike",
                               str(vocab(ml1m)["movie_ids"][0])), 2)
    assert error == ("error: Les Misérables (1995) is given twice with different ratings, "
                     "5 (--like) and 1 (--dislike): give it once")


def test_a_movie_rated_twice_with_two_ratings_is_refused_naming_both_lines(ml1m, tmp_path):
    m = vocab(ml1m)["movie_ids"][0]
    (tmp_path / "r.tsv").write_text(f"{m}\t4\n# again\n{m}\t2\n")
    error = one_line_error(rec(ml1m, "recommend", "--rated", str(tmp_path / "r.tsv")), 2)
    assert error == (f"error: Les Misérables (1995) is given twice with different ratings, "
                     f"4 ({tmp_path / 'r.tsv'}:1) and 2 ({tmp_path / 'r.tsv'}:3): give it once")


def test_the_same_movie_given_twice_alike_counts_once_with_a_note(ml1m):
    v = vocab(ml1m)
    once = recommend(ml1m, "--like", str(v["movie_ids"][1]))
    result = rec(ml1m, "recommend", "--like", str(v["movie_ids"][1]), "--rated", "-",
                 "--format", "tsv", input=f"{v['titles'][1]}\t5\n")
    assert result.exit_code == 0 and result.stdout == once
    assert result.stderr == (f"warning: {v['titles'][1]} is given twice (stdin:1 and --like), "
                             "both 5: counted once\n")
    once = recommend(ml1m, "--like", str(v["movie_ids"][0]))
    result = rec(ml1m, "recommend", "--like", str(v["movie_ids"][0]), "--rated", "-",
                 "--format", "tsv", input=f"{ACCENTED}\t5\n")
    assert result.exit_code == 0 and result.stdout == once
    assert result.stderr == ("warning: Les Misérables (1995) is given twice (stdin:1 and "
                             "--like), both 5: counted once\n")


# --- each dataset's scales ------------------------------------------------------------------


def test_a_dataset_rated_in_halves_keeps_its_scale_everywhere(latest, tmp_path):
    """ml-latest rates from 0.5: preprocess records it, the model's scoring clips to it,
    --rated takes 0.5, --dislike means 0.5, and a rating below it is refused."""
    assert vocab(latest)["rating_range"] == [0.5, 5.0]
    scoring = json.loads((latest / "output" / "features" / "scoring.json").read_text())
    assert scoring["clip"] == [0.5, 5.0]
    ids = vocab(latest)["movie_ids"]
    half = recommend(latest, "--rated", "-", input=f"{ids[1]}\t0.5\n{ids[2]}\t4.5\n")
    assert recommend(latest, "--dislike", str(ids[1]), "--rated", "-",
                     input=f"{ids[2]}\t4.5\n") == half
    assert half != recommend(latest, "--rated", "-", input=f"{ids[1]}\t1\n{ids[2]}\t4.5\n")
    error = one_line_error(rec(latest, "recommend", "--rated", "-", input=f"{ids[1]}\t0.25\n"), 2)
    assert error == (f"error: stdin:1: rating 0.25 for '{ids[1]}' is outside this dataset's "
                     "scale, 0.5 to 5")


def test_ml1m_and_ml100k_keep_their_one_to_five_scale(ml1m, ml100k):
    for root in (ml1m, ml100k):
        assert vocab(root)["rating_range"] == [1.0, 5.0]
        error = one_line_error(rec(root, "recommend", "--rated", "-", input="2\t0.5\n"), 2)
        assert error == "error: stdin:1: rating 0.5 for '2' is outside this dataset's scale, 1 to 5"


@pytest.mark.parametrize("args", [["--gender", "F"], ["--age", "25-34"],
                                  ["--occupation", "programmer", "--gender", "M"]])
def test_demographics_a_dataset_lacks_are_refused_in_one_line(latest, args):
    result = rec(latest, "recommend", "--like", str(vocab(latest)["movie_ids"][1]), *args)
    flags = ", ".join(a for a in args if a.startswith("--"))
    flags = ", ".join(sorted(flags.split(", "), key=["--gender", "--age",
                                                     "--occupation"].index))
    assert one_line_error(result, 2) == ("error: ml-latest-small has no demographics (gender, "
                                         f"age, occupation): leave out {flags}")
    assert result.stdout == ""


def test_occupation_numbers_are_the_datasets_own_codes(ml1m, ml100k):
    like = lambda root, *a: recommend(root, "--like", str(vocab(root)["movie_ids"][1]), *a)  # noqa: E731
    # ml-1m: 12 is its code for programmer
    assert like(ml1m, "--occupation", "12") == like(ml1m, "--occupation", "Programmer")
    assert like(ml1m, "--occupation", "12") != like(ml1m, "--occupation", "13")
    # ml-100k numbers no occupation: 12 is refused, naming its labels
    error = one_line_error(rec(ml100k, "recommend", "--like", "2", "--occupation", "12"), 2)
    assert error == ("error: unknown --occupation '12' for ml-100k: choose from administrator, "
                     "artist, doctor, engineer, programmer, writer")
    assert like(ml100k, "--occupation", "programmer") != like(ml100k)


def test_age_numbers_are_the_datasets_own_codes(ml1m, ml100k):
    like = lambda root, *a: recommend(root, "--like", str(vocab(root)["movie_ids"][1]), *a)  # noqa: E731
    # ml-1m's codes are its buckets' lower ends; 30 is none of them
    assert like(ml1m, "--age", "25") == like(ml1m, "--age", "25-34")
    error = one_line_error(rec(ml1m, "recommend", "--like", "2", "--age", "30"), 2)
    assert error == ("error: unknown --age '30' for synthetic: choose from Under 18, 18-24, "
                     "25-34, 35-44, 45-49, 50-55, 56+; or synthetic's code 1, 18, 25, 35, 45, "
                     "50, 56")
    # ml-100k gives ages in years: 30 is in 25-34
    assert like(ml100k, "--age", "30") == like(ml100k, "--age", "25-34")
    assert like(ml100k, "--age", "30") != like(ml100k, "--age", "50-55")


REAL = ROOT.parent / "shared" / "data" / "ml-latest-small.zip"


@pytest.mark.skipif(not REAL.is_file(), reason="needs ../shared/data/ml-latest-small.zip")
def test_real_ml_latest_small_records_its_half_star_scale(tmp_path):
    assert rec(tmp_path, "download", "--dataset", "ml-latest-small", "--source",
               str(REAL)).exit_code == 0
    assert rec(tmp_path, "preprocess").exit_code == 0
    v = vocab(tmp_path)
    assert v["rating_range"] == [0.5, 5.0] and v["codes"] == {}
    values = np.load(tmp_path / "output" / "dataset" / "rating_values.npy")
    assert int((values == 0.5).sum()) == 1370
    shutil.rmtree(tmp_path / "data")


def test_a_vocab_from_before_the_scales_were_recorded_still_gets_the_datasets_own(ml1m, latest,
                                                                                  ml100k):
    """A vocab.json written before preprocess recorded them: the rating range is read off
    the ratings, ml-1m's codes hold for an ml-1m layout, ml-100k's numbers are refused."""
    from rec.datasets.contract import ML1M_CODES, load_dataset, demographic_codes
    from rec.paths import Paths

    expected = {ml1m: ((1.0, 5.0), ML1M_CODES), latest: ((0.5, 5.0), {"age": {}, "occupation": {}}),
                ml100k: ((1.0, 5.0), {"age": {}, "occupation": {}})}
    for root, (scale, codes) in expected.items():
        ds = load_dataset(Paths(root / "data", root / "output"))
        ds.vocab.rating_range = ds.vocab.codes = None
        assert ds.rating_range == scale and demographic_codes(ds.vocab) == codes


def test_fold_drops_latin_accents_but_not_kana_voicing():
    from rec.typed import fold

    assert fold("Les Mise\u0301rables") == fold("LES MISÉRABLES") == "les miserables"
    assert fold("Ελληνικά") == "ελληνικα" and fold("Foo™ Bar") == "footm bar"
    assert fold("ガス") != fold("カス")  # another word, not an accent
    assert fold("´") == "" and fold("a ¨  b") == "a b"  # spacing accents leave no spaces
    assert fold(fold("Amélie ™ (2001)")) == fold("Amélie ™ (2001)")


# --- titles with alternates: as said, and found by a part -----------------------------------


@pytest.mark.parametrize("title, said", [
    ("Usual Suspects, The (1995)", "The Usual Suspects (1995)"),
    ("Avventura, L' (1960)", "L'Avventura (1960)"),
    # the alternate's own moved article is turned around too, from the same list
    ("Good, the Bad and the Ugly, The (Buono, il brutto, il cattivo, Il) (1966)",
     "The Good, the Bad and the Ugly (Il Buono, il brutto, il cattivo) (1966)"),
    ("Fistful of Dollars, A (Per un pugno di dollari) (1964)",
     "A Fistful of Dollars (Per un pugno di dollari) (1964)"),
    ("Bear, The (Ours, L') (1988)", "The Bear (L'Ours) (1988)"),
    ("Trou, Le (Hole, The) (Night Watch, The) (1960)",
     "Le Trou (The Hole) (The Night Watch) (1960)"),
    ("Vitelloni, I (a.k.a. Young Ones, The) (1953)", "I Vitelloni (a.k.a. The Young Ones) (1953)"),
    ("Convent, The (Convento, O) (1995)", "The Convent (O Convento) (1995)"),
    ("Human Centipede, The (First Sequence) (2009)", "The Human Centipede (First Sequence) (2009)"),
    ("Babylon 5, The", "The Babylon 5"),  # no year
    # as written but for a moved article: a comma that moves none, a parenthesis inside the
    # title, an alternate without one
    ("Honey, I Shrunk the Kids (1989)", "Honey, I Shrunk the Kids (1989)"),
    ("Monsters, Inc. (Monstres, Inc.) (2001)", "Monsters, Inc. (Monstres, Inc.) (2001)"),
    ("(500) Days of Summer (2009)", "(500) Days of Summer (2009)"),
    ("You Can (Not) Redo, The (2012)", "The You Can (Not) Redo (2012)"),
    ("Frontière(s) (2007)", "Frontière(s) (2007)"),
    ("Hard 8 (a.k.a. Sydney, a.k.a. Hard Eight) (1996)",
     "Hard 8 (a.k.a. Sydney, a.k.a. Hard Eight) (1996)"),
    ("Tale of Two Sisters, A (Janghwa, Hongryeon) (2003)",
     "A Tale of Two Sisters (Janghwa, Hongryeon) (2003)"),
])
def test_a_title_and_each_alternate_are_said_with_their_article_first(title, said):
    from rec.twotower.titles import display_title, shown_title

    assert shown_title(title) == said
    assert display_title(title) == re.sub(r" \(\d{4}\)$", "", said)  # the reasons' form


@pytest.mark.parametrize("typed", ["The Good, the Bad and the Ugly",
                                   "the good, the bad and the ugly (1966)",
                                   "Il buono, il brutto, il cattivo"])
def test_similar_and_like_find_a_title_with_an_alternate_as_people_say_it(ml1m, typed):
    movie = str(vocab(ml1m)["movie_ids"][2])
    liked = recommend(ml1m, "--like", typed)
    assert liked == recommend(ml1m, "--like", movie)
    similar = rec(ml1m, "similar", typed, "--format", "tsv")
    assert similar.exit_code == 0, similar.output
    assert similar.stdout == rec(ml1m, "similar", movie, "--format", "tsv").stdout


def test_a_title_with_an_alternate_is_shown_as_said(ml1m):
    said = "The Good, the Bad and the Ugly (Il Buono, il brutto, il cattivo)"
    error = one_line_error(rec(ml1m, "recommend", "--like", ALTERNATE, "--dislike",
                               str(vocab(ml1m)["movie_ids"][2])), 2)
    assert error == (f"error: {said} (1966) is given twice with different ratings, "
                     "5 (--like) and 1 (--dislike): give it once")
    assert f"\tbecause you liked {said}\n" in recommend(ml1m, "--like", ALTERNATE)


ALTERNATES = ["Postman, The (1997)", "Postman, The (Postino, Il) (1994)",
              "Good, the Bad and the Ugly, The (Buono, il brutto, il cattivo, Il) (1966)",
              "Good, the Bad, the Weird, The (Joheunnom nabbeunnom isanghannom) (2008)",
              "Party, The (Boum, La) (1980)", "Party 2, The (Boum 2, La) (1982)",
              "Pom Poko (a.k.a. Raccoon War, The) (Heisei tanuki gassen pompoko) (1994)"]


@pytest.mark.parametrize("typed, rows", [
    ("The Good, the Bad and the Ugly", [2]), ("the good, the bad and the ugly (1966)", [2]),
    ("The Good, the Bad and the Ugly (Il Buono, il brutto, il cattivo)", [2]),
    ("The Good, the Bad and the Ugly (Il buono, il brutto, il cattivo) (1966)", [2]),
    (ALTERNATES[2], [2]), ("Il buono, il brutto, il cattivo", [2]),
    ("The Good, the Bad", [2, 3]),  # contained in both
    ("The Postman", [0]),  # a whole title equal to it wins over a part equal to it
    ("The Postman (1994)", [1]), ("Il Postino", [1]),
    ("La Boum", [4]), ("The Party", [4]),  # a part equal to it wins over 'The Party 2'
    ("The Raccoon War", [6]), ("a.k.a. the raccoon war", [6]), ("Raccoon War, The", [6]),
])
def test_a_title_with_alternates_is_found_by_all_of_it_or_one_part(typed, rows):
    from rec.twotower.titles import TitleIndex

    assert TitleIndex(ALTERNATES).matches(typed) == rows


SEQUELS = ["Star Wars: Episode IV - A New Hope (1977)",
           "Star Wars: Episode V - The Empire Strikes Back (1980)",
           "Star Wars: Episode I - The Phantom Menace (1999)", "Terminator, The (1984)",
           "Terminator 2: Judgment Day (1991)", "Godfather, The (1972)",
           "Godfather: Part II, The (1974)", "Mask (1985)", "Mask, The (1994)"]


@pytest.mark.parametrize("typed, rows", [
    ("Star Wars", [0, 1, 2]),  # refused: 'give a movie id, or (part of) the title with its year'
    ("Star Wars (1977)", [0]), ("star wars (1999)", [2]), ("Star Wars (2005)", []),
    ("Terminator", [3]), ("Godfather", [5]),  # the title without its article is a name
    ("Godfather (1974)", [5, 6]), ("Godfather: Part II", [6]),  # 'Godfather' names 1972's:
    ("Terminator (1991)", [3, 4]),  # a wrong year is refused with it listed, not swapped
    ("Wars (1977)", [0]),

    ("Mask", [7]), ("The Mask", [8]),  # a whole title wins over one without its article
])
def test_a_title_without_its_article_or_part_of_it_with_its_year_finds_the_movie(typed, rows):
    from rec.twotower.titles import TitleIndex

    assert TitleIndex(SEQUELS).matches(typed) == rows


def test_a_part_of_a_title_is_a_title_name_and_close_to_a_near_miss():
    from rec.twotower.titles import TitleIndex, close_titles

    index = TitleIndex(ALTERNATES)
    assert index.named("the party") == [4] and index.named("The Good") == []
    assert close_titles(ALTERNATES, "The Good the Bad and the Ugly") == (
        "'The Good, the Bad and the Ugly (Il Buono, il brutto, il cattivo) (1966)' or "
        "'The Good, the Bad, the Weird (Joheunnom nabbeunnom isanghannom) (2008)'")
