"""The `rec` command line: global options, help, `preprocess` and `status` end to end.

Everything runs in-process through typer's CliRunner (stdout and stderr are kept apart), on
a tiny synthetic dataset or the hand-written fixtures in tests/fixtures/.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from rec import __version__

from rec.storage import manifest
from rec.cli import COMMANDS, app, load_command
from typer.testing import CliRunner
from rec.datasets.contract import ALL_FILES

from conftest import assert_paddle_free, rec

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
invoke = functools.partial(rec, out="out")  # output in TMP/out
SYNTHETIC = ["download", "--dataset", "synthetic", "--users", "50", "--movies", "40",
             "--ratings", "600", "--format", "json"]


def one_error(result) -> str:
    """The whole stderr, which must be exactly one `error:` line."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def states(tmp_path: Path) -> dict[str, str]:
    r = invoke(tmp_path, "status", "--format", "json")
    assert r.exit_code == 0, r.stderr
    return {row["stage"]: row["state"] for row in json_lines(r.stdout)}


def command_names() -> list[str]:
    return [name for name, _, _ in COMMANDS]


@pytest.fixture
def synthetic(tmp_path):
    r = invoke(tmp_path, *SYNTHETIC)
    assert r.exit_code == 0, r.stderr
    return tmp_path


def with_fixture(tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(FIXTURES / name, tmp_path / "data" / name))


# --- the app -------------------------------------------------------------------------------


def test_help_lists_every_command_with_one_line():
    r = invoke(None, "--help", env={"COLUMNS": "80"})  # a plain terminal: still one row each
    assert r.exit_code == 0 and r.stderr == ""
    assert "--data-dir" in r.stdout and "--output-dir" in r.stdout
    rows = {}
    for line in r.stdout.splitlines():
        m = re.match(r"^│ (\S+)\s{2,}(.+?)\s*│$", line)
        if m and not m.group(1).startswith("-"):
            rows[m.group(1)] = m.group(2)
    names = command_names()
    assert {"download", "preprocess", "status"} <= set(names)
    for name in names:
        command = load_command(name)
        help_text = (command.short_help or "").strip()
        assert help_text and "\n" not in help_text, f"{name}: help must be one line"
        assert rows.get(name) == help_text, f"{name} missing from `rec --help`"
        assert (command.help or "").strip(), f"{name}: `rec {name} --help` needs its full text"
    assert set(rows) == set(names)


def help_words(*args: str) -> str:
    """`rec ARGS --help` at 80 columns, its words on one line (rich's box and wrapping gone)."""
    r = invoke(None, *args, "--help", env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    return " ".join(r.stdout.replace("│", " ").split())


def test_help_says_what_the_options_do():
    from rec.datasets.splits import SPLITS

    assert "ctr-train The rank stage (default), or a Wide&Deep / DeepFM CTR model." in \
        help_words()
    assert f"preprocess: {', '.join(SPLITS[:-1])} or {SPLITS[-1]}." in help_words("pipeline")
    recommend = help_words("recommend")
    assert "A disliked movie (the lowest rating; repeatable)." in recommend
    assert "json: JSON lines, one object per row" in recommend
    assert "Seed of the global_mean baseline's random order of movies" in help_words("evaluate")
    similar = help_words("similar")
    assert "Usage: rec similar [OPTIONS] MOVIE... " in similar and "{" not in similar


def test_no_arguments_shows_help():
    r = invoke(None)
    assert r.exit_code in (0, 2) and "Usage" in r.stdout + r.stderr


def test_version():
    """Told from the installed files, without importing paddle (test_layout checks that),
    and what paddle itself says."""
    r = invoke(None, "--version")
    assert r.exit_code == 0
    from rec.engine.runtime import describe_build

    assert r.stdout == f"rec {__version__}\n{describe_build()}\n" and r.stderr == ""
    assert describe_build().startswith("paddlepaddle ") and "build" in describe_build()


@pytest.mark.parametrize("visible,count", [("0,1", 2), ("", 0), ("1,-1,0", 1), ("GPU-1f", 1)])
def test_version_counts_the_gpus_cuda_would_see(monkeypatch, visible, count):
    from rec import build_info

    monkeypatch.setattr(build_info, "paddle_build", lambda: "paddlepaddle-gpu 3.3.1, CUDA build")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert build_info.paddle_devices() == f"paddlepaddle-gpu 3.3.1, CUDA build, {count} GPU(s)"


def test_every_command_is_in_the_readme():
    readme = ROOT / "README.md"
    if not readme.exists():
        pytest.xfail("README.md is not written yet")
    text = readme.read_text(encoding="utf-8")
    missing = [n for n in command_names() if not re.search(rf"\brec {re.escape(n)}(?![\w-])", text)]
    assert missing == [], f"README.md does not mention: {', '.join('rec ' + n for n in missing)}"


def test_the_readme_lists_the_pipeline_s_stages_in_their_order():
    """The first command's description names the stages `rec pipeline` runs, as it runs them."""
    from rec.stages.pipeline import STAGES

    text = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    listed = re.search(r"offline, about a minute on 2 cores\): ([\w, -]+)", text).group(1)
    assert listed.strip().split(", ") == list(STAGES)


def test_status_download_preprocess_never_import_paddle(tmp_path):
    base = ["--data-dir", str(tmp_path / "data"), "--output-dir", str(tmp_path / "out"), "--quiet"]
    assert_paddle_free(base + ["status"],
                       base + ["download", "--dataset", "synthetic", "--users", "20", "--movies",
                               "20", "--ratings", "100"],
                       base + ["preprocess", "--format", "json"],
                       base + ["status", "--format", "json"])
    assert (tmp_path / "out" / "dataset" / "split.npy").exists()


@pytest.mark.parametrize("args", [["train"], ["preprocess"], ["evaluate"], ["save-features"],
                                  ["ctr-train"], ["export"],
                                  ["download", "--source", "nowhere.zip"]])
def test_a_stage_that_fails_at_once_leaves_no_empty_folders(tmp_path, args):
    """The folders a writing stage created for its lock go with it when it wrote nothing;
    folders that were there stay, even empty."""
    r = invoke(tmp_path, *args)
    assert r.exit_code == 2 and r.stderr.startswith("error: "), r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    (tmp_path / "out").mkdir()
    assert invoke(tmp_path, *args).exit_code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("args", [["download"], ["preprocess"], ["train", "--epochs", "1"],
                                  ["evaluate"], ["save-features"], ["ctr-train"],
                                  ["ctr-predict"], ["recommend", "1"], ["similar", "1"],
                                  ["status"]])
def test_bad_format_is_refused_before_any_work(tmp_path, args):
    # train, evaluate and save-features used to do (and record) all their work first
    r = invoke(tmp_path, *args, "--format", "xml")
    assert r.exit_code == 2 and r.stdout == ""
    assert one_error(r) == "error: unknown --format 'xml': choose one of auto, table, tsv, csv, json"
    assert not (tmp_path / "out").exists()


# --- preprocess: usage errors --------------------------------------------------------------


def test_preprocess_missing_dataset(tmp_path):
    r = invoke(tmp_path, "preprocess")
    assert r.exit_code == 2 and r.stdout == ""
    assert one_error(r) == (f"error: missing {tmp_path / 'data' / 'ml-1m'}: "
                            f"run `rec download --dataset ml-1m` first")
    r = invoke(tmp_path, "preprocess", "--dataset", "ml-100k")
    assert r.exit_code == 2 and "`rec download --dataset ml-100k`" in one_error(r)
    assert not (tmp_path / "out" / "dataset").exists()


def test_preprocess_refuses_an_unknown_dataset_with_the_known_ones(tmp_path):
    from rec.datasets import registry

    r = invoke(tmp_path, "preprocess", "--dataset", "nope")
    assert r.exit_code == 2 and r.stdout == ""
    assert one_error(r) == (f"error: unknown dataset 'nope' (and no folder "
                            f"{tmp_path / 'data' / 'nope'}): choose one of "
                            f"{', '.join(registry.names())}")


def test_format_names_are_not_case_sensitive(synthetic):
    upper = invoke(synthetic, "status", "--format", "TSV")
    assert upper.exit_code == 0 and upper.stdout == invoke(synthetic, "status", "--format",
                                                            "tsv").stdout


@pytest.mark.parametrize("args,message", [
    (["--split", "user"], "error: unknown --split 'user': choose random, time, time-user or users"),
    (["--val-ratio", "0"], "error: --val-ratio must be between 0 and 1 (got 0.0)"),
    (["--val-ratio", "1"], "error: --val-ratio must be between 0 and 1 (got 1.0)"),
    (["--val-ratio", "1.5"], "error: --val-ratio must be between 0 and 1 (got 1.5)"),
    (["--val-ratio", "-0.1"], "error: --val-ratio must be between 0 and 1 (got -0.1)"),
    (["--format", "xml"], "error: unknown --format 'xml': choose one of auto, table, tsv, csv, json"),
])
def test_preprocess_bad_options(synthetic, args, message):
    r = invoke(synthetic, "preprocess", *args)
    assert r.exit_code == 2 and r.stdout == ""
    assert one_error(r) == message
    assert not (synthetic / "out" / "dataset").exists()  # nothing done before the check
    assert states(synthetic)["preprocess"] == "not run"


def test_preprocess_unparsable_option(synthetic):
    r = invoke(synthetic, "preprocess", "--val-ratio", "lots")
    assert r.exit_code == 2 and r.stdout == "" and "--val-ratio" in r.stderr


@pytest.mark.parametrize("args,needle", [
    (["preprocess", "--val-ratio", "lots"], "Invalid value for '--val-ratio'"),
    (["train", "--epochs", "-1"], "Invalid value for '--epochs'"),
    (["recommend", "1", "--nope"], "No such option: --nope"),
    (["similar"], "Missing argument 'MOVIE'"),
    (["bogus"], "No such command 'bogus'"),
])
def test_parser_errors_are_one_line(tmp_path, args, needle):
    # the parser's own errors (types, ranges, unknown options) end like every other error
    r = invoke(tmp_path, *args)
    assert r.exit_code == 2 and r.stdout == ""
    assert needle in one_error(r) and "--help`" in one_error(r)


def test_preprocess_malformed_file_fails_with_one_line(tmp_path):
    folder = with_fixture(tmp_path, "ml1m_malformed_rating")
    r = invoke(tmp_path, "--quiet", "preprocess", "--dataset", "ml1m_malformed_rating")
    assert r.exit_code == 1 and r.stdout == ""
    assert one_error(r) == (f"error: {folder / 'ratings.dat'}:3: malformed line "
                            "'3::2861::four::978301968' (expected user::movie::rating::timestamp)")
    assert not (tmp_path / "out" / "dataset").exists()


# --- preprocess: output --------------------------------------------------------------------


def test_preprocess_json_is_one_object_on_stdout(synthetic):
    r = invoke(synthetic, "preprocess", "--format", "json")
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert isinstance(out, dict)
    assert out["dataset"] == "synthetic"  # the one downloaded last is the default
    assert (out["users"], out["movies"], out["ratings"]) == (50, 40, 600)
    assert (out["train"], out["validation"]) == (540, 60)
    assert out["unknown_user_ratings"] == 0 and out["unknown_movie_ratings"] == 0
    assert out["output"] == str(synthetic / "out" / "dataset")
    # the logs and the summary table are on stderr, never stdout
    assert "parsing" in r.stderr and "parsing" not in r.stdout
    assert "preprocess synthetic" in r.stderr and "│" not in r.stdout
    split = np.load(synthetic / "out" / "dataset" / "split.npy")
    assert int(split.sum()) == 60


def test_preprocess_tsv_has_a_header(synthetic):
    for args in (["--format", "tsv"], []):  # auto is TSV when stdout is not a terminal
        r = invoke(synthetic, "preprocess", *args)
        assert r.exit_code == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0] == "key\tvalue"
        rows = dict(line.split("\t") for line in lines[1:])
        assert rows["dataset"] == "synthetic" and rows["ratings"] == "600"
        assert rows["validation"] == "60" and rows["split"] == "random"
        assert "parsing" not in r.stdout


def test_preprocess_quiet_writes_nothing_on_stderr(synthetic):
    r = invoke(synthetic, "--quiet", "preprocess", "--format", "json")
    assert r.exit_code == 0 and r.stderr == ""
    assert json.loads(r.stdout)["ratings"] == 600


def test_preprocess_time_split(synthetic):
    r = invoke(synthetic, "preprocess", "--split", "time", "--val-ratio", "0.2",
               "--format", "json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["split"] == "time" and out["train"] + out["validation"] == 600
    ds = synthetic / "out" / "dataset"
    users, times = np.load(ds / "rating_users.npy"), np.load(ds / "rating_times.npy")
    split = np.load(ds / "split.npy")
    assert int(split.sum()) == out["validation"]
    assert times[split == 1].min() > times[split == 0].max()  # one global cutoff
    for u in np.unique(users):
        mine = users == u
        val, train = times[mine & (split == 1)], times[mine & (split == 0)]
        if len(val) and len(train):
            assert val.min() >= train.max()
    vocab = json.loads((ds / "vocab.json").read_text())
    assert vocab["split"] == {"method": "time", "val_ratio": 0.2, "seed": None}


def test_preprocess_reports_unknown_references(tmp_path):
    with_fixture(tmp_path, "ratings_unknown_movie")
    r = invoke(tmp_path, "preprocess", "--dataset", "ratings_unknown_movie", "--format", "json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["unknown_user_ratings"], out["unknown_movie_ratings"], out["ratings"]) == (2, 2, 5)
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: dropped 4 ratings that reference unknown users or movies "
                        "(e.g. user 9 movie 1, user 2 movie 999, user 3 movie 999)"]
    assert "warning" not in r.stdout


@pytest.mark.parametrize("name,users,movies,ratings", [
    ("ml1m_five_lines", 5, 5, 5), ("ml100k_five_lines", 5, 5, 5), ("latest_five_lines", 3, 5, 5)])
def test_preprocess_fixture_formats(tmp_path, name, users, movies, ratings):
    with_fixture(tmp_path, name)
    r = invoke(tmp_path, "preprocess", "--dataset", name, "--val-ratio", "0.4", "--format", "json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["users"], out["movies"], out["ratings"], out["validation"]) == (
        users, movies, ratings, 2)
    assert sorted(p.name for p in (tmp_path / "out" / "dataset").iterdir()) == sorted(ALL_FILES + ["unit.json"])


def test_second_preprocess_replaces_the_dataset_whole(synthetic):
    out_dir = synthetic / "out"
    assert invoke(synthetic, "preprocess", "--seed", "1").exit_code == 0
    first = np.load(out_dir / "dataset" / "split.npy")
    (out_dir / "dataset" / "leftover.npy").write_bytes(b"from an older rec")
    r = invoke(synthetic, "preprocess", "--seed", "2", "--format", "json")
    assert r.exit_code == 0, r.stderr
    dataset = out_dir / "dataset"
    # a new folder swapped in: no file of the old one survives, nothing temporary is left
    assert sorted(p.name for p in dataset.iterdir()) == sorted(ALL_FILES + ["unit.json"])
    assert sorted(p.name for p in out_dir.iterdir()) == ["dataset", "manifest.json"]
    second = np.load(dataset / "split.npy")
    assert second.sum() == first.sum() == 60 and not np.array_equal(first, second)
    assert json.loads((dataset / "vocab.json").read_text())["split"]["seed"] == 2
    entry = json.loads((out_dir / "manifest.json").read_text())["stages"]["preprocess"]
    assert entry["params"]["seed"] == 2
    assert states(synthetic)["preprocess"] == "fresh"


def test_failed_preprocess_keeps_the_previous_dataset(synthetic):
    assert invoke(synthetic, "preprocess").exit_code == 0
    dataset = synthetic / "out" / "dataset"
    before = {p.name: p.read_bytes() for p in dataset.iterdir()}
    ratings = synthetic / "data" / "synthetic" / "ratings.dat"
    ratings.write_text(ratings.read_text() + "1::1::9::978300760\n")
    r = invoke(synthetic, "--quiet", "preprocess")
    assert r.exit_code == 1 and "ratings.dat:601: rating 9 out of range" in one_error(r)
    assert {p.name: p.read_bytes() for p in dataset.iterdir()} == before
    assert sorted(p.name for p in (synthetic / "out").iterdir()) == ["dataset", "manifest.json"]


# --- status --------------------------------------------------------------------------------


def test_status_before_anything(tmp_path):
    from rec.build_info import paddle_build

    r = invoke(tmp_path, "status", "--format", "json")
    assert r.exit_code == 0 and r.stderr == f"paddle: {paddle_build()}\n"
    rows = json_lines(r.stdout)
    assert [row["stage"] for row in rows] == manifest.RECORDED  # export too
    assert all(row["state"] == "not run" and row["when"] == "" for row in rows)
    r = invoke(tmp_path, "status", "--format", "tsv")
    lines = r.stdout.splitlines()
    assert lines[0] == "stage\tstate\twhen\tparams"
    assert [line.split("\t")[:2] for line in lines[1:]] == [[s, "not run"] for s in manifest.RECORDED]
    assert not (tmp_path / "out").exists()  # looking writes nothing


def test_status_fresh_stale_modified(synthetic):
    assert invoke(synthetic, "preprocess", "--seed", "7").exit_code == 0
    r = invoke(synthetic, "status", "--format", "json")
    rows = {row["stage"]: row for row in json_lines(r.stdout)}
    assert rows["download"]["state"] == "fresh" and rows["preprocess"]["state"] == "fresh"
    assert rows["preprocess"]["params"]["dataset"] == "synthetic"
    assert rows["preprocess"]["params"]["seed"] == 7
    assert rows["preprocess"]["when"] and rows["train"]["state"] == "not run"

    # a raw file changed: preprocess read it, so preprocess is stale
    ratings = synthetic / "data" / "synthetic" / "ratings.dat"
    ratings.write_text(ratings.read_text() + "1::1::3::978300760\n")
    now = states(synthetic)
    assert now["preprocess"] == "stale"
    assert now["download"] == "modified"  # its output is no longer what it wrote

    # preprocess again: fresh; then touch one of its outputs: modified
    assert invoke(synthetic, "preprocess").exit_code == 0
    assert states(synthetic)["preprocess"] == "fresh"
    vocab = synthetic / "out" / "dataset" / "vocab.json"
    vocab.write_text(vocab.read_text() + "\n")
    assert states(synthetic)["preprocess"] == "modified"


# --- folders from the environment ----------------------------------------------------------


@pytest.mark.parametrize("text", ["garbage", "[1, 2]", '{"stages": []}',
                                  '{"stages": {"train": 5, "preprocess": {"params": [1]}}}'])
def test_a_damaged_manifest_is_unreadable_for_status_and_replaced_by_a_stage(synthetic, text):
    # a manifest that is JSON but not the expected shape was an "internal error" for status,
    # and made every stage fail at its very end, after its work, when recording itself
    manifest_file = synthetic / "out" / "manifest.json"
    manifest_file.parent.mkdir(parents=True, exist_ok=True)
    manifest_file.write_text(text)
    r = invoke(synthetic, "status", "--format", "json")
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr.splitlines()[-1].startswith(f"error: {manifest_file} is unreadable (")
    r = invoke(synthetic, "preprocess", "--dataset", "synthetic", "--format", "json")
    assert r.exit_code == 0, r.stderr
    assert f"warning: {manifest_file} is unreadable" in r.stderr
    assert states(synthetic)["preprocess"] == "fresh"


def test_env_vars_move_the_folders(tmp_path, monkeypatch):
    data, out, cwd = tmp_path / "envdata", tmp_path / "envout", tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("REC_DATA_DIR", str(data))
    monkeypatch.setenv("REC_OUTPUT_DIR", str(out))
    r = invoke(None, *SYNTHETIC)
    assert r.exit_code == 0, r.stderr
    r = invoke(None, "preprocess", "--format", "json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["output"] == str(out / "dataset")
    assert (data / "synthetic" / "ratings.dat").exists()
    assert sorted(p.name for p in (out / "dataset").iterdir()) == sorted(ALL_FILES + ["unit.json"])
    assert list(cwd.iterdir()) == []  # no data/ or output/ in the working folder
    r = invoke(None, "status", "--format", "json")
    assert {row["stage"]: row["state"] for row in json_lines(r.stdout)}["preprocess"] == "fresh"
    # an explicit flag beats the environment (a new output folder: no manifest to say which
    # dataset was downloaded last, so name it)
    other = tmp_path / "flagout"
    r = invoke(None, "--output-dir", str(other), "preprocess", "--dataset", "synthetic")
    assert r.exit_code == 0 and (other / "dataset" / "vocab.json").exists()


# --- the default dataset follows the data folder in use ------------------------------------


def test_download_into_another_data_folder(tmp_path):
    other = tmp_path / "X"
    small = ["download", "--dataset", "synthetic", "--users", "30", "--movies", "40",
             "--ratings", "300"]
    assert invoke(tmp_path, *SYNTHETIC).exit_code == 0
    assert invoke(tmp_path, "preprocess").exit_code == 0
    # `rec --data-dir X download ...` with the same output folder
    r = rec(None, "--data-dir", str(other), "--output-dir", str(tmp_path / "out"), *small)
    assert r.exit_code == 0, r.stderr
    r = invoke(tmp_path, "status", "--format", "json")
    assert {row["stage"]: row["state"] for row in json_lines(r.stdout)}["preprocess"] == "stale"
    assert f"--data-dir {other}" in r.stderr and "preprocess read" in r.stderr
    # a bare preprocess with the default data folder: the dataset downloaded last there
    r = invoke(tmp_path, "preprocess", "--format", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)["users"] == 50, r.stderr
    # ... and with --data-dir X again: X's
    r = rec(None, "--data-dir", str(other), "--output-dir", str(tmp_path / "out"),
            "preprocess", "--format", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)["users"] == 30, r.stderr
    assert states(tmp_path)["preprocess"] == "fresh"
    # a data folder holding no dataset names the one the last download went to
    shutil.rmtree(tmp_path / "data")
    r = invoke(tmp_path, "preprocess")
    assert r.exit_code == 2 and f"--data-dir {other}" in one_error(r)


# --- -v/--verbose ----------------------------------------------------------------------------


def test_verbose_adds_debug_lines_and_a_bug_shows_its_traceback(synthetic, monkeypatch):
    quiet = invoke(synthetic, "status", "--format", "json")
    loud = invoke(synthetic, "-v", "status", "--format", "json")
    assert loud.exit_code == 0 and loud.stdout == quiet.stdout
    assert "debug:" not in quiet.stderr
    debug = [line for line in loud.stderr.splitlines() if line.startswith("debug: ")]
    assert any(f"rec {__version__}" in line for line in debug)
    assert any(str(synthetic / "out") in line for line in debug)  # the folders in use
    assert "parameters {'fmt': 'json'}" in loud.stderr and "Context" not in loud.stderr
    assert "--verbose" in rec(None, "--help").stdout

    def bug(*args, **kwargs):
        raise ZeroDivisionError("a bug")
    monkeypatch.setattr(manifest, "read", bug)
    r = invoke(synthetic, "status")
    assert r.exit_code == 1 and "rerun with -v" in r.stderr and "Traceback" not in r.stderr
    r = CliRunner().invoke(app, ["--output-dir", str(synthetic / "out"), "-v", "status"])
    assert isinstance(r.exception, ZeroDivisionError)  # re-raised: the full traceback
