"""MovieLens parsers, the preprocess arrays and the train/validation splits, on hand-written
five-line fixtures (tests/fixtures/<scenario>/) whose every expected value is worked out by hand.

Index conventions checked here (rec/datasets/contract.py): users.npy rows are
[user index, gender, age bucket, occupation] with 0 = unknown; genre and title-word id 0 is
padding; genre ids follow the MovieLens-1M genre order, then other genres alphabetically; title
words are numbered by frequency, then alphabetically.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from rec.datasets.contract import (
    AGES, ALL_FILES, GENDERS, OCCUPATIONS, TRAIN, VAL, load_dataset,
)
from rec.datasets.movielens import detect_layout, parse_folder
from rec.errors import EXIT_FAILURE, EXIT_USAGE, RecError
from rec.paths import Paths
from rec.datasets import build as pp
from rec.datasets.build import build, title_words, write_dataset
from rec.datasets.splits import random_split, time_split

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ML1M_RATING = "user::movie::rating::timestamp"
ML1M_GENRES = ["<pad>", "Action", "Adventure", "Animation", "Children's", "Comedy", "Drama",
               "Fantasy", "Musical", "Thriller"]


def fixture(tmp_path: Path, name: str) -> Path:
    """A private copy of a fixture folder, safe to edit."""
    return Path(shutil.copytree(FIXTURES / name, tmp_path / name))


def replace_line(path: Path, lineno: int, text: str, encoding: str = "latin-1") -> str:
    lines = path.read_bytes().decode(encoding).splitlines()
    lines[lineno - 1] = text
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return text


def failure(folder: Path) -> RecError:
    with pytest.raises(RecError) as info:
        parse_folder(folder)
    return info.value


def built(folder: Path, split: str = "random", val_ratio: float = 0.4, seed: int = 42):
    return build(parse_folder(folder), folder.name, split, val_ratio, seed)


# --- ml-1m ---------------------------------------------------------------------------------


def test_ml1m_parse():
    raw = parse_folder(FIXTURES / "ml1m_five_lines")
    assert detect_layout(FIXTURES / "ml1m_five_lines") == "ml-1m"
    assert raw.user_ids.tolist() == [1, 2, 3, 4, 5]
    assert raw.gender.tolist() == [2, 1, 1, 1, 2]  # F, M, M, M, F
    assert raw.age.tolist() == [1, 7, 3, 5, 2]  # codes 1, 56, 25, 45, 18
    assert raw.occupation.tolist() == [11, 17, 16, 8, 1]  # codes 10, 16, 15, 7, 0, plus one
    assert [OCCUPATIONS[o] for o in raw.occupation] == [
        "K-12 student", "self-employed", "scientist", "executive/managerial", "other"]
    assert [AGES[a] for a in raw.age] == ["Under 18", "56+", "25-34", "45-49", "18-24"]
    assert raw.movie_ids.tolist() == [1, 2, 73, 2861, 10]  # file order, not sorted
    assert raw.titles == ["Toy Story (1995)", "Jumanji (1995)", "Misérables, Les (1995)",
                          "Story of Us, The (1999)", "GoldenEye (1995)"]
    assert raw.movie_genres[2] == ["Drama", "Musical"]
    assert raw.rating_users.tolist() == [1, 2, 3, 1, 5]
    assert raw.rating_movies.tolist() == [1, 73, 2861, 10, 1]
    assert raw.rating_values.dtype == np.float32
    assert raw.rating_values.tolist() == [5, 3, 4, 2, 1]
    assert raw.rating_times.tolist() == [978300760, 978302109, 978301968, 978300275, 978824291]
    assert raw.has_demographics


def test_ml1m_arrays_and_vocab():
    arrays, vocab, report = built(FIXTURES / "ml1m_five_lines")
    assert arrays["users.npy"].dtype == np.int64
    assert arrays["users.npy"].tolist() == [[0, 2, 1, 11], [1, 1, 7, 17], [2, 1, 3, 16],
                                            [3, 1, 5, 8], [4, 2, 2, 1]]
    assert vocab.genres == ML1M_GENRES
    assert arrays["movie_genres.npy"].tolist() == [
        [3, 4, 5],  # Animation|Children's|Comedy
        [2, 4, 7],  # Adventure|Children's|Fantasy
        [6, 8, 0],  # Drama|Musical, padded with 0
        [5, 6, 0],  # Comedy|Drama
        [1, 2, 9],  # Action|Adventure|Thriller
    ]
    # "story" is the only word used twice; the latin-1 title keeps its accented word whole
    assert vocab.title_words == ["<pad>", "story", "goldeneye", "jumanji", "les", "misérables",
                                 "of", "the", "toy", "us"]
    assert arrays["movie_titles.npy"].tolist() == [[8, 1, 0, 0], [3, 0, 0, 0], [5, 4, 0, 0],
                                                   [1, 6, 9, 7], [2, 0, 0, 0]]
    assert vocab.titles[2] == "Misérables, Les (1995)"
    assert vocab.years == [1995, 1995, 1995, 1999, 1995]
    assert vocab.user_ids == [1, 2, 3, 4, 5] and vocab.movie_ids == [1, 2, 73, 2861, 10]
    assert vocab.genders == GENDERS and vocab.ages == AGES and vocab.occupations == OCCUPATIONS
    assert vocab.has_demographics and vocab.dataset == "ml1m_five_lines"
    assert arrays["rating_users.npy"].dtype == np.int32
    assert arrays["rating_users.npy"].tolist() == [0, 1, 2, 0, 4]
    assert arrays["rating_movies.npy"].dtype == np.int32
    assert arrays["rating_movies.npy"].tolist() == [0, 2, 3, 4, 0]
    assert arrays["rating_values.npy"].dtype == np.float32
    assert arrays["rating_values.npy"].tolist() == [5, 3, 4, 2, 1]
    assert arrays["rating_times.npy"].dtype == np.int64
    assert arrays["split.npy"].dtype == np.uint8
    assert int(arrays["split.npy"].sum()) == 2  # round(5 * 0.4) validation rows
    assert vocab.split == {"method": "random", "val_ratio": 0.4, "seed": 42}
    assert report == {"unknown_user_ratings": 0, "unknown_movie_ratings": 0, "users": 5,
                      "movies": 5, "ratings": 5, "train": 3, "validation": 2, "genres": 9,
                      "title_words": 9}


def test_ml1m_per_user_time_split_on_fixture():
    arrays, vocab, report = built(FIXTURES / "ml1m_five_lines", "time-user", 0.5)
    # user 1 has two ratings: its later one (row 0, 978300760 > 978300275) is validation;
    # users 2, 3 and 5 have one rating each and keep it for training
    assert arrays["split.npy"].tolist() == [1, 0, 0, 0, 0]
    assert vocab.split == {"method": "time-user", "val_ratio": 0.5, "seed": None}
    assert (report["train"], report["validation"]) == (4, 1)


def test_global_time_split_puts_no_training_rating_after_a_validation_one():
    from rec.datasets.splits import global_time_split

    times = np.array([5, 1, 9, 3, 9, 7, 2, 8, 4, 6])
    split = global_time_split(times, 0.3)
    assert split.tolist() == [0, 0, 1, 0, 1, 0, 0, 1, 0, 0]  # 8, 9, 9: the latest three
    assert times[split == 0].max() < times[split == 1].min()
    # a tie at the cutoff stays in training: never one second split in two
    split = global_time_split(np.array([1, 2, 3, 3, 3]), 0.4)
    assert split.tolist() == [0, 0, 0, 0, 0]
    assert global_time_split(np.array([1, 2, 3, 4]), 0.5).tolist() == [0, 0, 1, 1]


def test_title_words():
    assert title_words("Misérables, Les (1995)") == ["misérables", "les"]
    assert title_words("Ferris Bueller's Day Off (1986)") == ["ferris", "bueller's", "day", "off"]
    assert title_words("Scream of Stone (Schrei aus Stein) (1991)") == [
        "scream", "of", "stone", "schrei", "aus", "stein"]
    assert title_words("Se7en (1995)") == ["se7en"]
    assert title_words("Black Mirror") == ["black", "mirror"]


def test_long_titles_are_cut(tmp_path):
    folder = fixture(tmp_path, "ml1m_five_lines")
    long_title = " ".join(f"w{i}" for i in range(20)) + " (2000)"
    replace_line(folder / "movies.dat", 5, f"10::{long_title}::Action")
    arrays, vocab, _ = built(folder)
    assert arrays["movie_titles.npy"].shape == (5, pp.MAX_TITLE_WORDS)
    row = arrays["movie_titles.npy"][4]
    assert [vocab.title_words[i] for i in row] == [f"w{i}" for i in range(pp.MAX_TITLE_WORDS)]


# --- ml-100k -------------------------------------------------------------------------------


def test_ml100k_arrays_and_vocab():
    folder = FIXTURES / "ml100k_five_lines"
    assert detect_layout(folder) == "ml-100k"
    arrays, vocab, report = built(folder)
    # occupations: "unknown", then u.occupation in file order, then any others users name
    assert vocab.occupations == ["unknown", "administrator", "other", "student", "technician",
                                 "writer", "doctor"]
    # exact ages 24, 53, 17, 56, 33 -> the ml-1m buckets 18-24, 50-55, Under 18, 56+, 25-34
    assert arrays["users.npy"].tolist() == [[0, 1, 2, 4], [1, 2, 6, 2], [2, 1, 1, 3],
                                            [3, 1, 7, 5], [4, 2, 3, 6]]
    assert [AGES[a] for a in arrays["users.npy"][:, 2]] == [
        "18-24", "50-55", "Under 18", "56+", "25-34"]
    assert vocab.movie_ids == [1, 2, 267, 1682, 4]
    assert vocab.genres == ["<pad>", "Action", "Adventure", "Animation", "Children's", "Comedy",
                            "Drama", "Thriller"]
    assert arrays["movie_genres.npy"].tolist() == [
        [3, 4, 5], [1, 2, 7],
        [0, 0, 0],  # the "unknown" genre flag is no genre
        [6, 0, 0], [1, 5, 6]]
    assert vocab.title_words == ["<pad>", "aus", "get", "goldeneye", "of", "schrei", "scream",
                                 "shorty", "stein", "stone", "story", "toy", "unknown"]
    assert arrays["movie_titles.npy"].tolist() == [
        [11, 10, 0, 0, 0, 0], [3, 0, 0, 0, 0, 0], [12, 0, 0, 0, 0, 0],
        [6, 4, 9, 5, 1, 8], [2, 7, 0, 0, 0, 0]]
    assert vocab.years == [1995, 1995, None, 1991, 1995]
    assert arrays["rating_users.npy"].tolist() == [0, 1, 2, 0, 4]
    assert arrays["rating_movies.npy"].tolist() == [0, 1, 2, 3, 4]
    assert arrays["rating_values.npy"].tolist() == [3, 4, 1, 5, 2]
    assert arrays["rating_times.npy"].tolist() == [881250949, 891717742, 878887116, 881250950,
                                                   875072484]
    assert report["ratings"] == 5 and report["validation"] == 2


# --- ml-latest -----------------------------------------------------------------------------


def test_latest_arrays_and_vocab():
    folder = FIXTURES / "latest_five_lines"
    assert detect_layout(folder) == "ml-latest"
    arrays, vocab, report = built(folder)
    # no demographics at all: users come from ratings.csv, every feature is "unknown" (0)
    assert vocab.user_ids == [1, 3, 7]
    assert arrays["users.npy"].tolist() == [[0, 0, 0, 0], [1, 0, 0, 0], [2, 0, 0, 0]]
    assert vocab.ages == ["unknown"] and vocab.occupations == ["unknown"]
    assert not vocab.has_demographics
    assert vocab.movie_ids == [1, 11, 176601, 2, 193609]
    assert vocab.titles[1] == "American President, The (1995)"  # quoted, with a comma
    assert vocab.years == [1995, 1995, None, 1995, 1991]
    # ml-1m genres in their order, then "Children" (not an ml-1m genre) after them
    assert vocab.genres == ["<pad>", "Adventure", "Animation", "Comedy", "Drama", "Fantasy",
                            "Romance", "Children"]
    assert arrays["movie_genres.npy"].tolist() == [
        [1, 2, 7, 3, 5], [3, 4, 6, 0, 0],
        [0, 0, 0, 0, 0],  # (no genres listed)
        [1, 7, 5, 0, 0], [3, 0, 0, 0, 0]]
    assert vocab.title_words == ["<pad>", "dice", "american", "andrew", "black", "clay",
                                 "jumanji", "mirror", "president", "rules", "story", "the", "toy"]
    assert arrays["movie_titles.npy"].tolist() == [
        [12, 10, 0, 0, 0], [2, 8, 11, 0, 0], [4, 7, 0, 0, 0], [6, 0, 0, 0, 0], [3, 1, 5, 1, 9]]
    assert arrays["rating_values.npy"].tolist() == [4.0, 3.5, 0.5, 5.0, 4.5]  # half stars
    assert arrays["rating_users.npy"].tolist() == [0, 0, 1, 1, 2]
    assert arrays["rating_movies.npy"].tolist() == [0, 1, 2, 3, 4]
    assert arrays["rating_times.npy"].tolist() == [964982703, 964981247, 1306463578, 1306464321,
                                                   1106635946]
    assert report["users"] == 3 and report["genres"] == 7


# --- malformed files -----------------------------------------------------------------------


@pytest.mark.parametrize("name,lineno,line,message", [
    ("ml1m_malformed_rating", 3, "3::2861::four::978301968",
     f"malformed line '3::2861::four::978301968' (expected {ML1M_RATING})"),
    ("ml1m_rating_out_of_range", 4, "1::10::6::978300275",
     f"rating 6 out of range [1, 5] in line '1::10::6::978300275' (expected {ML1M_RATING})"),
    ("ml1m_wrong_field_count", 2, "2::73::3",
     f"malformed line '2::73::3' (expected {ML1M_RATING})"),
])
def test_malformed_ratings_fixtures(name, lineno, line, message):
    folder = FIXTURES / name
    assert line in (folder / "ratings.dat").read_text().splitlines()[lineno - 1]
    error = failure(folder)
    assert str(error) == f"{folder / 'ratings.dat'}:{lineno}: {message}"
    assert error.exit_code == EXIT_FAILURE


@pytest.mark.parametrize("fixture_name,file,lineno,line,expected", [
    # ml-1m
    ("ml1m_five_lines", "ratings.dat", 5, "5::1::4.5::978824291", ML1M_RATING),
    ("ml1m_five_lines", "ratings.dat", 1, "1::1::5::978300760::7", ML1M_RATING),
    ("ml1m_five_lines", "ratings.dat", 2, "", ML1M_RATING),  # an empty line in the middle
    ("ml1m_five_lines", "users.dat", 2, "2::X::56::16::70072",
     "user::M|F::age code::occupation 0-20::zip"),
    ("ml1m_five_lines", "users.dat", 3, "3::M::26::15::55117",  # 26 is no age code
     "user::M|F::age code::occupation 0-20::zip"),
    ("ml1m_five_lines", "users.dat", 4, "4::M::45::21::02460",  # occupations are 0-20
     "user::M|F::age code::occupation 0-20::zip"),
    ("ml1m_five_lines", "movies.dat", 2, "2::Jumanji (1995)", "movie_id::title::genre|genre"),
    ("ml1m_five_lines", "movies.dat", 4, "x::Story of Us, The (1999)::Comedy",
     "movie_id::title::genre|genre"),
    # ml-100k
    ("ml100k_five_lines", "u.data", 3, "3\t267\tone\t878887116",
     "user<TAB>movie<TAB>rating<TAB>timestamp"),
    ("ml100k_five_lines", "u.user", 5, "5|33|X|doctor|15213", "user|age|M|F|occupation|zip"),
    ("ml100k_five_lines", "u.item", 3, "267|unknown||||2" + "|0" * 18,
     "movie|title|date||url|19 genre flags"),
    ("ml100k_five_lines", "u.item", 1, "1|Toy Story (1995)|01-Jan-1995||url|0|0|0|1",
     "movie|title|date||url|19 genre flags"),
    # ml-latest: line numbers count the header
    ("latest_five_lines", "ratings.csv", 4, "3,176601,half,1306463578",
     "userId,movieId,rating,timestamp"),
    ("latest_five_lines", "ratings.csv", 6, "7,193609,4.5", "userId,movieId,rating,timestamp"),
    ("latest_five_lines", "movies.csv", 5, "2,Jumanji (1995)", "movieId,title,genres"),
])
def test_malformed_line_names_file_line_and_text(tmp_path, fixture_name, file, lineno, line,
                                                 expected):
    folder = fixture(tmp_path, fixture_name)
    replace_line(folder / file, lineno, line)
    error = failure(folder)
    assert str(error) == f"{folder / file}:{lineno}: malformed line {line!r} (expected {expected})"


@pytest.mark.parametrize("fixture_name,file,lineno,line,message", [
    ("ml100k_five_lines", "u.data", 2, "2\t2\t0\t891717742",
     "rating 0 out of range [1, 5] in line '2\\t2\\t0\\t891717742' (expected a rating from 1 to 5)"),
    ("latest_five_lines", "ratings.csv", 3, "1,11,0.0,964981247",
     "rating 0 out of range [0.5, 5] in line '1,11,0.0,964981247' "
     "(expected userId,movieId,rating,timestamp)"),
    ("latest_five_lines", "ratings.csv", 6, "7,193609,5.5,1106635946",
     "rating 5.5 out of range [0.5, 5] in line '7,193609,5.5,1106635946' "
     "(expected userId,movieId,rating,timestamp)"),
])
def test_rating_out_of_range(tmp_path, fixture_name, file, lineno, line, message):
    folder = fixture(tmp_path, fixture_name)
    replace_line(folder / file, lineno, line)
    assert str(failure(folder)) == f"{folder / file}:{lineno}: {message}"


def test_not_utf8_and_missing_files(tmp_path):
    folder = fixture(tmp_path, "latest_five_lines")
    movies = folder / "movies.csv"
    movies.write_bytes(movies.read_bytes().replace(b"Jumanji", "Jümanji".encode("latin-1")))
    assert str(failure(folder)).startswith(f"{movies}: not valid utf-8 text")
    folder = fixture(tmp_path, "ml1m_five_lines")
    (folder / "movies.dat").unlink()
    error = failure(folder)
    assert error.exit_code == EXIT_USAGE and "rec download" in str(error)
    assert str(error).startswith(f"missing {folder / 'movies.dat'}")
    with pytest.raises(RecError, match="holds no MovieLens files"):
        parse_folder(tmp_path)


# --- ratings that reference unknown users or movies ----------------------------------------


def test_unknown_users_and_movies_are_dropped_and_reported(capsys):
    arrays, vocab, report = built(FIXTURES / "ratings_unknown_movie")
    # rows 6-9 reference user 9 (unknown), movie 999 (unknown) twice, and both
    assert report["unknown_user_ratings"] == 2
    assert report["unknown_movie_ratings"] == 2
    assert report["ratings"] == 5 and report["train"] + report["validation"] == 5
    assert arrays["rating_users.npy"].tolist() == [0, 1, 2, 0, 4]
    assert arrays["rating_movies.npy"].tolist() == [0, 2, 3, 4, 0]
    assert arrays["rating_times.npy"].tolist() == [978300760, 978302109, 978301968, 978300275,
                                                   978824291]
    assert len(arrays["split.npy"]) == 5
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == (
        "warning: dropped 4 ratings that reference unknown users or movies "
        "(e.g. user 9 movie 1, user 2 movie 999, user 3 movie 999)")


def test_known_references_give_no_warning(capsys):
    built(FIXTURES / "ml1m_five_lines")
    assert capsys.readouterr().err == ""


# --- the written contract ------------------------------------------------------------------


def test_written_dataset_reads_back(tmp_path):
    paths = Paths(tmp_path / "data", tmp_path / "out")
    arrays, vocab, _ = built(FIXTURES / "ml1m_five_lines")
    write_dataset(paths.dataset_dir, arrays, vocab)
    assert sorted(p.name for p in paths.dataset_dir.iterdir()) == sorted(ALL_FILES + ["unit.json"])
    ds = load_dataset(paths)
    assert ds.vocab == vocab
    for name, array in arrays.items():
        loaded = getattr(ds, name[:-4])
        assert loaded.dtype == array.dtype and np.array_equal(loaded, array), name
    assert (ds.n_users, ds.n_movies) == (5, 5)
    users, movies, ratings = ds.part(VAL)
    assert len(users) == 2 and len(ds.part(TRAIN)[0]) == 3


def test_failed_write_keeps_the_old_dataset(tmp_path, monkeypatch):
    """A write that fails halfway leaves the previous dataset whole and no temporary folder."""
    paths = Paths(tmp_path / "data", tmp_path / "out")
    arrays, vocab, _ = built(FIXTURES / "ml1m_five_lines")
    write_dataset(paths.dataset_dir, arrays, vocab)
    before = {p.name: p.read_bytes() for p in paths.dataset_dir.iterdir()}
    calls = []

    def failing_save(path, array):
        calls.append(path)
        if len(calls) == 3:
            raise OSError("disk full")
        real_save(path, array)

    real_save = pp.save_npy
    monkeypatch.setattr(pp, "save_npy", failing_save)
    other, other_vocab, _ = built(FIXTURES / "ml100k_five_lines")
    with pytest.raises(OSError):
        write_dataset(paths.dataset_dir, other, other_vocab)
    assert {p.name: p.read_bytes() for p in paths.dataset_dir.iterdir()} == before
    assert [p.name for p in paths.output_dir.iterdir()] == ["dataset"]


# --- the dataset as one unit (rec.storage.unit; what the reader checks: rec.datasets.contract) ---


def sealed(tmp_path: Path, name: str, seed: int = 42) -> Paths:
    paths = Paths(tmp_path / name / "data", tmp_path / name / "out")
    write_dataset(paths.dataset_dir, *built(FIXTURES / "ml1m_five_lines", seed=seed)[:2])
    return paths


def test_the_dataset_is_sealed_and_the_same_dataset_is_the_same_unit(tmp_path):
    import hashlib
    import json

    a, again, other = sealed(tmp_path, "a"), sealed(tmp_path, "again"), sealed(tmp_path, "o", 1)
    record = json.loads((a.dataset_dir / "unit.json").read_text())
    assert sorted(record["sha256"]) == sorted(record["bytes"]) == sorted(ALL_FILES)
    for name in ALL_FILES:
        data = (a.dataset_dir / name).read_bytes()
        assert record["sha256"][name] == hashlib.sha256(data).hexdigest()
        assert record["bytes"][name] == len(data)
    # the run id is the files' digest: preprocess is deterministic, its unit too
    assert (again.dataset_dir / "unit.json").read_bytes() == (a.dataset_dir / "unit.json").read_bytes()
    assert json.loads((other.dataset_dir / "unit.json").read_text())["run_id"] != record["run_id"]


def test_a_dataset_from_an_older_rec_is_refused_naming_preprocess(tmp_path):
    from rec.datasets.contract import load_vocab
    from rec.errors import UsageError

    paths = sealed(tmp_path, "a")
    (paths.dataset_dir / "unit.json").unlink()  # as rec wrote output/dataset before
    for load in (load_dataset, load_vocab):
        with pytest.raises(UsageError, match=r"does not hold one complete run \(no unit.json\): "
                                             r"run `rec preprocess` again$"):
            load(paths)


@pytest.mark.parametrize("name", ["split.npy", "vocab.json"])
def test_a_split_or_vocab_of_the_same_size_from_another_run_is_refused(tmp_path, name):
    """Another --seed: a split.npy (and vocab.json, which records the seed) of exactly the
    same size: hashed on every read, it is refused, not trained on as if it were this split."""
    from rec.errors import UsageError

    paths, other = sealed(tmp_path, "a"), sealed(tmp_path, "o", seed=43)
    assert (paths.dataset_dir / name).read_bytes() != (other.dataset_dir / name).read_bytes()
    assert (paths.dataset_dir / name).stat().st_size == (other.dataset_dir / name).stat().st_size
    shutil.copy(other.dataset_dir / name, paths.dataset_dir / name)
    with pytest.raises(UsageError, match=f"{name} is not the one written with the rest"):
        load_dataset(paths, mmap=True)


@pytest.mark.parametrize("mmap", [True, False])
def test_the_big_arrays_are_checked_by_size_and_not_read_again(tmp_path, monkeypatch, mmap):
    from rec.errors import UsageError
    from rec.storage.snapshot import Snapshot

    paths = sealed(tmp_path, "a")
    hashed, real = [], Snapshot.sha256
    monkeypatch.setattr(Snapshot, "sha256", lambda self, n: hashed.append(n) or real(self, n))
    ds = load_dataset(paths, mmap=mmap)
    assert hashed == ["split.npy"]  # vocab.json is hashed as it was read; the arrays never
    assert isinstance(ds.rating_times, np.memmap) == mmap
    with open(paths.dataset_dir / "rating_times.npy", "ab") as f:
        f.write(b"\0" * 8)  # a longer file: another run's (the rows still read the same)
    with pytest.raises(UsageError, match="rating_times.npy is not the one written with the rest"):
        load_dataset(paths, mmap=mmap)


# --- splits --------------------------------------------------------------------------------


@pytest.mark.parametrize("n,ratio", [(1000, 0.1), (7, 0.3), (10, 0.25), (5, 0.5), (1, 0.4),
                                     (0, 0.1), (1000209, 0.1)])
def test_random_split_count(n, ratio):
    split = random_split(n, ratio, seed=3)
    assert split.dtype == np.uint8 and split.shape == (n,)
    assert set(np.unique(split).tolist()) <= {TRAIN, VAL}
    assert int(split.sum()) == round(n * ratio)


def test_random_split_is_seeded():
    first = random_split(500, 0.2, seed=42)
    assert np.array_equal(random_split(500, 0.2, seed=42), first)
    second = random_split(500, 0.2, seed=43)
    assert not np.array_equal(second, first) and second.sum() == first.sum()


# user, time per row; rows 1 and 6 tie (user 7, t=300), rows 4 and 5 tie (user 9, t=10)
USERS = np.array([7, 7, 7, 3, 9, 9, 7, 9], dtype=np.int32)
TIMES = np.array([100, 300, 200, 50, 10, 10, 300, 5], dtype=np.int64)


@pytest.mark.parametrize("ratio,expected", [
    # user 7: 4 ratings -> 2 latest (rows 1, 6); user 9: 3 -> round(1.5) = 2 (rows 4, 5);
    # user 3: a single rating stays in training
    (0.5, [0, 1, 0, 0, 1, 1, 1, 0]),
    # round(0.4) = round(0.3) = 0, but every user with two or more ratings gets one: the
    # latest, and of tied times the later in the file (row 6 over 1, row 5 over 4)
    (0.1, [0, 0, 0, 0, 0, 1, 1, 0]),
    (0.75, [0, 1, 1, 0, 1, 1, 1, 0]),  # user 7: 3 rows (all but t=100); user 9: round(2.25) = 2
])
def test_time_split_exact_rows(ratio, expected):
    split = time_split(USERS, TIMES, ratio)
    assert split.dtype == np.uint8
    assert split.tolist() == expected


def test_time_split_does_not_depend_on_row_order():
    """Shuffling the rows moves the mask with them (ties aside, which follow file order)."""
    rng = np.random.default_rng(0)
    users = rng.integers(0, 30, 2000).astype(np.int32)
    times = rng.permutation(2000).astype(np.int64)  # distinct times: no ties
    split = time_split(users, times, 0.2)
    perm = rng.permutation(2000)
    assert np.array_equal(time_split(users[perm], times[perm], 0.2), split[perm])
    for u in np.unique(users):
        mine = users == u
        val, train = times[mine & (split == VAL)], times[mine & (split == TRAIN)]
        n = int(mine.sum())
        assert len(val) == (max(1, round(n * 0.2)) if n >= 2 else 0)
        if len(val) and len(train):
            assert val.min() > train.max()  # validation is each user's latest


def test_wrong_field_counts_that_cancel_out(tmp_path):
    folder = fixture(tmp_path, "ml1m_five_lines")
    replace_line(folder / "ratings.dat", 2, "2::73::3")
    replace_line(folder / "ratings.dat", 4, "1::10::2::978300275::5")
    assert "ratings.dat:2: malformed line '2::73::3'" in str(failure(folder))


def test_time_split_leaves_every_user_a_training_rating():
    from rec.datasets.splits import time_split

    users = np.array([0, 0, 1, 1, 1, 2])
    times = np.array([5, 6, 1, 2, 3, 9])
    split = time_split(users, times, 0.9)
    assert split.tolist() == [TRAIN, VAL, TRAIN, VAL, VAL, TRAIN]
