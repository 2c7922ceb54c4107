"""Start-up time: what the quick commands (`recommend`, `status`, `--help`) import and read.

bench/bench_recommend.py measures the time; these tests hold the causes in place: no pydantic
(rec.stages.values converts option values instead, exactly as typer's adapters do), no rich
in a pipe, no importlib.metadata, and `rec status` reading no file it need not hash.
"""

from __future__ import annotations

import json
import os
from importlib import metadata
from pathlib import Path

import pytest

from rec.storage import manifest
from rec.paths import Paths
from rec.build_info import installed_versions
from rec.stages.values import PlainValues

from conftest import assert_paddle_free, rec

SMALL = ["download", "--dataset", "synthetic", "--users", "30", "--movies", "20",
         "--ratings", "300"]


# --- option values without pydantic -----------------------------------------------------------

TEXTS = ["5", " 5 ", "1_0", "5.0", "5.5", "+3", "-1", "1e1", "inf", "nan", "11", "x", "",
         "true", "YES", "off", "2"]


@pytest.mark.parametrize("kind,low,high", [(int, None, None), (int, 0, 10), (float, None, None),
                                           (float, -1.0, 0.9), (str, None, None),
                                           (bool, None, None)])
def test_option_values_convert_as_typers_pydantic_adapters(kind, low, high):
    adapters = pytest.importorskip("typer._adapters")  # typer >= 0.29
    from pydantic import ValidationError
    from typer.models import OptionInfo

    adapter = adapters.try_build_adapter(kind, OptionInfo(min=low, max=high))
    plain = PlainValues(kind, low, high)
    for value in [*TEXTS, 5, 0, 1.0, True]:
        try:
            expected = adapter.validate_python(value)
        except ValidationError as e:
            expected = e.errors()[0]["msg"]
        try:
            got = plain.one(value, param=None, ctx=None)
        except Exception as e:  # typer.BadParameter
            got = e.message
        if kind is bool and value == "":
            continue  # pydantic reads "" as False; a flag's value is never ""
        same = got == expected or (got != got and expected != expected)  # nan
        assert type(got) is type(expected) and same, (kind, value, got, expected)


def test_value_errors_name_the_option_and_exit_2(tmp_path):
    r = rec(tmp_path, "recommend", "1", "--top", "x")
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr == ("error: Invalid value for '--top' / '-n': Input should be a valid "
                        "integer, unable to parse string as an integer (see `rec recommend "
                        "--help`)\n")
    r = rec(tmp_path, "recommend", "1", "--seed", str(2**32))
    assert r.stderr == ("error: Invalid value for '--seed': Input should be less than or equal "
                        "to 4294967295 (see `rec recommend --help`)\n")


def test_list_and_range_options_reach_the_command_converted(tmp_path):
    assert rec(tmp_path, "--quiet", *SMALL).exit_code == 0
    assert rec(tmp_path, "--quiet", "preprocess", "--val-ratio", "0.25", "--seed",
               "7").exit_code == 0
    params = manifest.load(Paths(tmp_path / "data", tmp_path / "output"))
    assert params["stages"]["preprocess"]["params"]["val_ratio"] == 0.25
    assert params["stages"]["preprocess"]["params"]["seed"] == 7


# --- what the quick commands import -----------------------------------------------------------


def test_quick_commands_import_no_pydantic_and_in_a_pipe_no_rich(tmp_path):
    assert rec(tmp_path, "--quiet", *SMALL).exit_code == 0
    assert rec(tmp_path, "--quiet", "preprocess").exit_code == 0
    base = ["--data-dir", str(tmp_path / "data"), "--output-dir", str(tmp_path / "output")]
    assert_paddle_free(base + ["status"], base + ["status", "--format", "tsv"],
                       forbidden=("paddle", "pydantic", "rich", "importlib.metadata"))
    # `rec recommend` (its features need a model): tests/test_recommend.py
    assert_paddle_free(["--help"], base + ["recommend", "--help"],
                       forbidden=("paddle", "pydantic"))


def test_installed_versions_are_importlib_metadatas():
    names = ["numpy", "typer", "rich", "paddlepaddle", "paddlepaddle-gpu", "no-such-dist"]
    expected = {}
    for name in names:
        try:
            expected[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    assert installed_versions(names) == expected


# --- rec status reads no unchanged file -------------------------------------------------------


def test_status_hashes_only_files_whose_size_or_mtime_changed(tmp_path, monkeypatch):
    assert rec(tmp_path, "--quiet", *SMALL).exit_code == 0
    assert rec(tmp_path, "--quiet", "preprocess").exit_code == 0
    hashed = []
    from rec.storage import fingerprints

    real = fingerprints.fingerprint
    monkeypatch.setattr(fingerprints, "fingerprint",
                        lambda p: hashed.append(Path(p)) or real(p))

    def states():
        hashed.clear()
        r = rec(tmp_path, "status", "--format", "json")
        assert r.exit_code == 0, r.stderr
        return {row["stage"]: row["state"] for row in map(json.loads, r.stdout.splitlines())}

    assert states()["preprocess"] == "fresh"
    assert hashed == []  # every file and folder by its stats

    vocab = tmp_path / "output" / "dataset" / "vocab.json"
    os.utime(vocab, ns=(vocab.stat().st_atime_ns, vocab.stat().st_mtime_ns + 10**9))
    assert states()["preprocess"] == "fresh"  # touched, same content: hashed, still fresh
    assert [p for p in hashed if p.is_file()] == [vocab]

    split = tmp_path / "output" / "dataset" / "split.npy"
    data = bytearray(split.read_bytes())
    data[-1] ^= 1  # same size; the mtime moves on
    split.write_bytes(bytes(data))
    assert states()["preprocess"] == "modified"


def test_status_of_a_manifest_without_stats_hashes_every_file(tmp_path):
    """A manifest written before the stats were recorded still says fresh or stale."""
    assert rec(tmp_path, "--quiet", *SMALL).exit_code == 0
    assert rec(tmp_path, "--quiet", "preprocess").exit_code == 0
    path = tmp_path / "output" / "manifest.json"
    old = json.loads(path.read_text())
    for entry in old["stages"].values():
        assert entry.pop("stats") is not None
    path.write_text(json.dumps(old))
    r = rec(tmp_path, "status", "--format", "json")
    assert [json.loads(line)["state"] for line in r.stdout.splitlines()][:2] == ["fresh", "fresh"]
    (tmp_path / "output" / "dataset" / "vocab.json").write_text("{}")
    r = rec(tmp_path, "status", "--format", "json")
    assert json.loads(r.stdout.splitlines()[1])["state"] == "modified"
