"""MovieLens 10M / 20M / 25M / 32M support: their layouts on hand-written five-line fixtures
(tests/fixtures/ml10m_five_lines, ml25m_five_lines), the chunked ratings reader and the
streaming structure check against their one-shot results, the registry entries, and
`rec download --source` + `rec preprocess` on a tiny ml-10m archive.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rec.datasets import chunked, registry
from rec.datasets.chunked import Range, read_ratings
from rec.datasets.movielens import detect_layout, parse_folder
from rec.errors import RecError
from rec.datasets.build import build, lookup
from rec.datasets.splits import random_split, time_split

from conftest import rec

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ML10M_RATING = "user::movie::rating::timestamp"
CSV_RATING = "userId,movieId,rating,timestamp"


def built(folder: Path, split: str = "random"):
    return build(parse_folder(folder), folder.name, split, 0.4, 42)


# --- the layouts ---------------------------------------------------------------------------


def test_ml10m_layout_parses_exactly():
    folder = FIXTURES / "ml10m_five_lines"
    assert detect_layout(folder) == "ml-10m"  # ratings.dat + movies.dat, no users.dat
    raw = parse_folder(folder)
    assert raw.user_ids.tolist() == [1, 5, 71567]  # the users the ratings name
    assert raw.movie_ids.tolist() == [1, 2, 73, 8606, 65133]
    assert raw.titles[2] == "Misérables, Les (1995)"  # UTF-8
    assert raw.movie_genres[3] == []  # (no genres listed)
    assert raw.rating_values.dtype == np.float32
    assert raw.rating_values.tolist() == [5, 4.5, 0.5, 3, 2.5]  # half stars
    assert raw.rating_times.tolist() == [838985046, 838983525, 838983392, 838984474, 1230070861]
    assert not raw.has_demographics

    arrays, vocab, report = built(folder)
    assert arrays["users.npy"].tolist() == [[0, 0, 0, 0], [1, 0, 0, 0], [2, 0, 0, 0]]
    assert vocab.ages == ["unknown"] and vocab.occupations == ["unknown"]
    assert vocab.genres == ["<pad>", "Adventure", "Animation", "Comedy", "Drama", "Fantasy",
                            "War", "Children"]
    assert arrays["movie_genres.npy"].tolist() == [
        [1, 2, 7, 3, 5], [1, 7, 5, 0, 0], [4, 6, 0, 0, 0], [0, 0, 0, 0, 0], [3, 0, 0, 0, 0]]
    assert arrays["rating_users.npy"].dtype == np.int32
    assert arrays["rating_users.npy"].tolist() == [0, 0, 1, 1, 2]
    assert arrays["rating_movies.npy"].tolist() == [0, 2, 1, 3, 4]
    assert arrays["rating_values.npy"].tolist() == [5, 4.5, 0.5, 3, 2.5]
    assert report["ratings"] == 5 and report["validation"] == 2 and report["users"] == 3


def test_ml25m_layout_parses_exactly():
    folder = FIXTURES / "ml25m_five_lines"
    assert detect_layout(folder) == "ml-latest"  # links.csv and the like are ignored
    arrays, vocab, report = built(folder)
    assert vocab.user_ids == [1, 2, 3, 162541] and not vocab.has_demographics
    assert vocab.movie_ids == [296, 306, 5952, 209171, 1]
    assert vocab.titles[2] == "Lord of the Rings: The Two Towers, The (2002)"
    assert vocab.years == [1994, 1994, 2002, 1962, 1995]
    assert vocab.genres == ["<pad>", "Action", "Adventure", "Animation", "Comedy", "Crime",
                            "Drama", "Fantasy", "Thriller", "Children"]
    assert arrays["movie_genres.npy"].tolist() == [
        [4, 5, 6, 8, 0], [6, 0, 0, 0, 0], [2, 7, 0, 0, 0], [1, 2, 6, 0, 0], [2, 3, 9, 4, 7]]
    assert arrays["rating_users.npy"].tolist() == [0, 0, 1, 2, 3]
    assert arrays["rating_movies.npy"].tolist() == [0, 1, 3, 0, 2]
    assert arrays["rating_values.npy"].tolist() == [5, 3.5, 0.5, 4, 4.5]
    assert arrays["rating_times.npy"].tolist() == [1147880044, 1147868817, 1574327703,
                                                   1439472215, 1240953372]
    assert report["users"] == 4 and report["movies"] == 5


def test_ml10m_malformed_and_out_of_range(tmp_path):
    folder = Path(tmp_path / "ml10m")
    folder.mkdir()
    for p in (FIXTURES / "ml10m_five_lines").iterdir():
        (folder / p.name).write_bytes(p.read_bytes())
    ratings = folder / "ratings.dat"
    good = ratings.read_text()
    ratings.write_text(good + "5::2::5.5::838983392\n")
    with pytest.raises(RecError) as info:
        parse_folder(folder)
    assert str(info.value) == (f"{ratings}:6: rating 5.5 out of range [0.5, 5] in line "
                               f"'5::2::5.5::838983392' (expected {ML10M_RATING})")
    ratings.write_text(good + "5::2::4,5::838983392\n")
    with pytest.raises(RecError) as info:
        parse_folder(folder)
    assert str(info.value) == (f"{ratings}:6: malformed line '5::2::4,5::838983392' "
                               f"(expected {ML10M_RATING})")


# --- the chunked reader --------------------------------------------------------------------


def ratings_text(n: int, sep: str, seed: int = 0) -> tuple[str, np.ndarray]:
    """n ratings lines with half stars written as MovieLens does ("5", "4.5" or "4.0")."""
    rng = np.random.default_rng(seed)
    users = rng.integers(1, 300_000, n)
    movies = rng.integers(1, 210_000, n)
    halves = rng.integers(1, 11, n)
    times = rng.integers(789_652_009, 1_574_327_703, n)
    decimals = rng.random(n) < 0.5
    lines = []
    for u, m, h, t, d in zip(users, movies, halves, times, decimals):
        value = f"{h / 2:.1f}" if (h % 2 or d) else str(h // 2)
        lines.append(sep.join([str(u), str(m), value, str(t)]))
    table = np.stack([users, movies, halves / 2, times], axis=1)
    return "\n".join(lines) + "\n", table


@pytest.mark.parametrize("sep,header", [("::", False), (",", True)])
def test_chunked_equals_one_shot(tmp_path, sep, header):
    text, table = ratings_text(2000, sep)
    path = tmp_path / "ratings"
    path.write_text((CSV_RATING + "\n" if header else "") + text)
    rng = Range(2, 0.5, 5, "rating", "x")
    one_shot = read_ratings(path, sep.encode(), "x", rng, header=header, dtype=np.float64,
                            chunk_bytes=1 << 30)
    assert [a.dtype for a in one_shot] == [np.int32, np.int32, np.float32, np.int64]
    for col, array in enumerate(one_shot):
        assert np.array_equal(array, table[:, col].astype(array.dtype))
    for size in (1, 64, 1000):
        chunked_read = read_ratings(path, sep.encode(), "x", rng, header=header,
                                    dtype=np.float64, chunk_bytes=size)
        for a, b in zip(chunked_read, one_shot):
            assert a.dtype == b.dtype and np.array_equal(a, b)
    # without the integer fast path (numpy's float parser on every chunk): the same values
    plain = chunked.read_columns(path, sep.encode(), (np.int32, np.int32, np.float32, np.int64),
                                 "x", header=header, dtype=np.float64, chunk_bytes=64)
    for a, b in zip(plain, one_shot):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("size", [64, 1 << 30])
def test_errors_name_the_line_across_chunks(tmp_path, size):
    text, _ = ratings_text(500, ",")
    lines = [CSV_RATING] + text.splitlines()
    path = tmp_path / "ratings.csv"

    def error(replace: dict[int, str]) -> str:
        path.write_text("\n".join(replace.get(i, line) for i, line in enumerate(lines, 1)) + "\n")
        with pytest.raises(RecError) as info:
            read_ratings(path, b",", CSV_RATING, Range(2, 0.5, 5, "rating", CSV_RATING),
                         header=True, dtype=np.float64, chunk_bytes=size)
        return str(info.value)

    assert error({377: "7,1,3.5"}) == (
        f"{path}:377: malformed line '7,1,3.5' (expected {CSV_RATING})")
    assert error({410: "7,1,9.0,1"}) == (
        f"{path}:410: rating 9 out of range [0.5, 5] in line '7,1,9.0,1' (expected {CSV_RATING})")
    # as in one shot, a malformed line anywhere wins over an earlier value out of range
    assert error({3: "7,1,9.0,1", 480: "7,x,4.0,1"}).startswith(f"{path}:480: malformed line")
    # per-line separator check: a short and a long line that cancel out
    assert error({200: "7,1,4.0", 201: "7,1,4.0,1,2"}).startswith(f"{path}:200: malformed line")


def test_ids_beyond_int32_are_kept(tmp_path):
    path = tmp_path / "ratings.dat"
    path.write_text("1::2::3::4\n3000000000::2::4::5\n")
    users, movies, values, times = read_ratings(path, b"::", "x", Range(2, 1, 5, "r", "x"),
                                                chunk_bytes=8)
    assert users.dtype == np.int64 and users.tolist() == [1, 3000000000]
    assert movies.dtype == np.int32


def test_lookup_table_and_binary_search_agree():
    values = np.array([5, 7, 1 << 40, -3, 7, 9], dtype=np.int64)
    small = lookup(np.array([7, 5, 9, 7]))  # a table; the first 7 wins
    large = lookup(np.array([7, 5, 9, 7, 1 << 40]))  # sparse ids: binary search
    assert small(values).tolist() == [1, 0, -1, -1, 0, 2]
    assert large(values).tolist() == [1, 0, 4, -1, 0, 2]
    assert lookup(np.array([], dtype=np.int64))(values).tolist() == [-1] * 6


def test_splits_are_those_of_the_one_shot_code():
    """random_split and time_split use less memory than before, with the same results."""
    n = 10_007
    old_random = np.zeros(n, dtype=np.uint8)
    old_random[np.random.default_rng(5).permutation(n)[:round(n * 0.1)]] = 1
    assert np.array_equal(random_split(n, 0.1, 5), old_random)
    rng = np.random.default_rng(0)
    users = rng.integers(0, 300, n).astype(np.int32)
    times = rng.integers(0, 50, n)  # many ties
    for ratio in (0.05, 0.3, 0.9):
        order = np.lexsort((np.arange(n), times, users))  # the former implementation
        u_sorted = users[order]
        starts = np.flatnonzero(np.r_[True, u_sorted[1:] != u_sorted[:-1]])
        counts = np.diff(np.r_[starts, n])
        n_val = np.where(counts >= 2, np.maximum(1, np.rint(counts * ratio)), 0).astype(int)
        n_val = np.minimum(n_val, counts - 1)
        rank_from_end = np.repeat(starts + counts, counts) - np.arange(n)
        old = np.zeros(n, dtype=np.uint8)
        old[order[rank_from_end <= np.repeat(n_val, counts)]] = 1
        assert np.array_equal(time_split(users, times, ratio), old)


# --- the streaming structure check ---------------------------------------------------------


def test_structure_check_streams_with_the_same_answers(tmp_path):
    spec = registry.SPECS["ml-10m"].file("ratings")
    path = tmp_path / "ratings.dat"
    lines = (FIXTURES / "ml10m_five_lines" / "ratings.dat").read_text().splitlines() * 40
    path.write_text("\n".join(lines) + "\n\n\n")  # blank lines at the end are harmless
    for block in (1, 7, 64, None):
        assert registry.check_file(path, dataclasses.replace(spec, rows=200), block=block) == 200
    lines[150] = "1::2::3"
    path.write_text("\n".join(lines) + "\n")
    for block in (1, 7, 64, None):
        with pytest.raises(RecError, match=r"^ratings.dat line 151 cannot be parsed: '1::2::3'$"):
            registry.check_file(path, spec, block=block)
    lines[150] = ""  # a blank line inside the file is not
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RecError, match="line 151 cannot be parsed: ''"):
        registry.check_file(path, spec, block=16)


def test_registry_knows_the_large_datasets():
    expected = {
        "ml-10m": ("ml-10m", "ce571fd55effeba0271552578f2648bd", 10681, 10000054),
        "ml-20m": ("ml-latest", "cd245b17a1ae2cc31bb14903e1204af3", 27278, 20000263),
        "ml-25m": ("ml-latest", "6b51fb2759a8657d3bfcbfc42b592ada", 62423, 25000095),
        "ml-32m": ("ml-latest", "d472be332d4daa821edc399621853b57", 87585, 32000204),
    }
    for name, (fmt, md5, movies, ratings) in expected.items():
        spec = registry.get(name)
        assert spec.url == f"https://files.grouplens.org/datasets/movielens/{name}.zip"
        assert (spec.format, spec.md5, spec.md5_url) == (fmt, md5, None)
        assert (spec.file("movies").rows, spec.file("ratings").rows) == (movies, ratings)
        assert not any(f.role == "users" for f in spec.files)
    assert registry.get("ml-10m").file("ratings").name == "ratings.dat"
    assert registry.get("ml-25m").file("ratings").header == CSV_RATING.encode()


# --- through the CLI -----------------------------------------------------------------------


def _zip(folder: Path, top: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.iterdir()):
            zf.writestr(f"{top}/{p.name}", p.read_bytes())
    return buf.getvalue()


@pytest.mark.parametrize("name,fixture,top", [("ml-10m", "ml10m_five_lines", "ml-10M100K"),
                                              ("ml-25m", "ml25m_five_lines", "ml-25m")])
def test_download_source_then_preprocess(tmp_path, monkeypatch, name, fixture, top):
    spec = registry.SPECS[name]
    monkeypatch.setitem(registry.SPECS, name, spec.with_rows(
        {f.name: 5 for f in spec.files}))
    archive = tmp_path / f"{name}.zip"
    archive.write_bytes(_zip(FIXTURES / fixture, top))
    base = ["--data-dir", str(tmp_path / "data"), "--output-dir", str(tmp_path / "out")]
    r = rec(None, *base, "download", "--dataset", name, "--source", str(archive), "--format",
            "json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["status"] == "copied from --source" and out["verified"] == "structure"
    assert out["ratings"] == 5 and out["movies"] == 5 and "users" not in out
    r = rec(None, *base, "preprocess", "--format", "json")  # the last download
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["dataset"], out["ratings"], out["movies"]) == (name, 5, 5)
    assert out["users"] == (3 if name == "ml-10m" else 4)


def test_download_source_with_wrong_counts_fails(tmp_path):
    archive = tmp_path / "ml-10m.zip"
    archive.write_bytes(_zip(FIXTURES / "ml10m_five_lines", "ml-10M100K"))
    r = rec(tmp_path, "download", "--dataset", "ml-10m", "--source", str(archive), out="out")
    assert r.exit_code == 2  # the user's own archive: bad input
    assert "movies.dat has 5 rows, expected 10681" in r.stderr
