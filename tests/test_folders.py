"""Folders that overlap or are shared: the same folder for data and output, one inside the
other, a data folder read by several output folders (README, "What happens when things go
wrong": the folder rules)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from conftest import SMALL, one_line_error, rec, snapshot


def run(data: Path, out: Path, *args: str, input: str | None = None):
    from typer.testing import CliRunner

    from rec.cli import app

    result = CliRunner().invoke(app, ["--data-dir", str(data), "--output-dir", str(out), *args],
                                input=input)
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    return result


def ok(result):
    assert result.exit_code == 0, result.output
    return result


SYNTHETIC = ["download", "--dataset", "synthetic", *SMALL]


def test_one_folder_for_data_and_output_works_for_every_writer(tmp_path):
    """The command locks the folder once; it is not 'in use by' itself."""
    w = tmp_path / "w"
    for args in (SYNTHETIC, ["preprocess"], ["train", "--epochs", "1"], ["save-features"]):
        ok(run(w, w, *args))
    assert sorted(p.name for p in w.iterdir()) == ["dataset", "features", "manifest.json",
                                                   "model", "synthetic"]
    status = ok(run(w, w, "status", "--format", "json")).stdout
    assert status.count('"state": "fresh"') == 4
    assert ok(run(w, w, "recommend", "1", "--format", "json")).stdout.count("\n") == 10


def test_one_folder_for_both_still_has_one_writer_at_a_time(tmp_path):
    from rec.storage import lock

    w = tmp_path / "w"
    with lock.hold(w, "rec train"):
        result = run(w, w, *SYNTHETIC)
    assert one_line_error(result, 2) == (f"error: {w} is in use by `rec train (pid {os.getpid()})`: "
                                         "wait for it to finish (one writer per folder)")
    assert not (w / "synthetic").exists()


@pytest.mark.parametrize("data", ["dataset", "dataset/raw", "model", "features", "ctr", "export"])
def test_a_data_folder_inside_an_output_artifact_is_refused_before_anything_is_touched(
        tmp_path, data):
    out = tmp_path / "o"
    ok(run(out / "raw", out, *SYNTHETIC))
    ok(run(out / "raw", out, "preprocess"))
    inner = out / data
    ok(run(tmp_path / "d", tmp_path / "d", *SYNTHETIC))  # raw data at the nested place
    inner.mkdir(parents=True, exist_ok=True)
    os.rename(tmp_path / "d" / "synthetic", inner / "synthetic")
    before = snapshot(tmp_path)
    for args in (["preprocess"], [*SYNTHETIC], ["status"], ["recommend", "1"]):
        error = one_line_error(run(inner, out, *args), 2)
        owner = {"dataset": "preprocess", "features": "save-features"}.get(data.split("/")[0],
                                                                          data.split("/")[0])
        owner = {"model": "train", "ctr": "ctr-train"}.get(owner, owner)
        assert error == (f"error: the data folder {inner} is inside "
                         f"{os.path.realpath(out / data.split('/')[0])}, which `rec {owner}` "
                         "owns and replaces: put the data folder elsewhere (the output folder "
                         "itself will do)")
    assert snapshot(tmp_path) == before  # nothing deleted, nothing written


def test_an_output_folder_inside_a_dataset_folder_is_refused(tmp_path):
    data = tmp_path / "d"
    ok(run(data, tmp_path / "o", *SYNTHETIC))
    before = snapshot(data)
    out = data / "synthetic" / "out"
    error = one_line_error(run(data, out, *SYNTHETIC), 2)
    assert error == (f"error: the output folder {out} is inside {data / 'synthetic'}, which "
                     "`rec download` owns and replaces: put the output folder elsewhere (the "
                     "data folder itself will do)")
    assert snapshot(data) == before


def test_artifacts_that_overlap_through_a_link_are_refused(tmp_path):
    data, out = tmp_path / "d", tmp_path / "o"
    ok(run(data, out, *SYNTHETIC))
    out.mkdir(exist_ok=True)
    (out / "dataset").symlink_to(data / "synthetic")  # preprocess would swap the raw data
    before = snapshot(data)
    error = one_line_error(run(data, out, "preprocess"), 2)
    assert error == (f"error: {data / 'synthetic'} (owned by `rec preprocess`) and "
                     f"{data / 'synthetic'} (owned by `rec download`) overlap, through a "
                     "symbolic link: the one would replace the other; point them at separate "
                     "folders")
    assert snapshot(data) == before


@pytest.mark.parametrize("layout", ["data inside output", "output inside data"])
def test_nested_folders_beside_the_artifacts_work(tmp_path, layout):
    data, out = ((tmp_path / "o" / "raw", tmp_path / "o") if layout == "data inside output"
                 else (tmp_path / "d", tmp_path / "d" / "out"))
    ok(run(data, out, *SYNTHETIC))
    ok(run(data, out, "preprocess"))
    ok(run(data, out, *SYNTHETIC))  # again: the raw folder is swapped, the dataset stays
    assert (data / "synthetic" / "ratings.dat").is_file()
    assert (out / "dataset" / "vocab.json").is_file()


def test_a_shared_data_folder_replaced_during_preprocess_is_read_as_one_version(
        tmp_path, monkeypatch):
    """A download for output O1 regenerates data/synthetic while preprocess for O2 reads
    it, between its users and its ratings: O2 gets the new version whole (said on stderr),
    exactly what a preprocess of the new data alone writes, never old users with new
    ratings."""
    from rec.datasets import movielens, registry
    from rec.datasets.synthetic import SyntheticSpec
    from rec.paths import Paths
    from rec.datasets.download import generate_synthetic

    data = tmp_path / "data"
    ok(run(data, tmp_path / "o1", *SYNTHETIC))
    real, calls = movielens.read_ratings, []

    def swapped_midway(*args, **kwargs):
        if not calls:  # a download for o1 runs now, with another seed
            generate_synthetic(Paths(data, tmp_path / "o1"), registry.get("synthetic"),
                               SyntheticSpec(users=90, movies=70, ratings=2500, seed=5))
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(movielens, "read_ratings", swapped_midway)
    result = ok(run(data, tmp_path / "o2", "preprocess", "--format", "json"))
    assert len(calls) == 2
    assert (f"warning: {data / 'synthetic'} was replaced while it was read (a `rec download` "
            "for another output folder?): reading the new version") in result.stderr
    assert "dropped" not in result.stderr
    monkeypatch.undo()
    ok(run(data, tmp_path / "o3", "preprocess"))
    assert snapshot(tmp_path / "o2" / "dataset") == snapshot(tmp_path / "o3" / "dataset")
    users = np.load(tmp_path / "o2" / "dataset" / "users.npy")
    assert len(users) == 90
    # what was read is what the manifest records: status calls it fresh
    assert '"state": "fresh"' in ok(run(data, tmp_path / "o2", "status", "--format",
                                        "json")).stdout.splitlines()[1]
