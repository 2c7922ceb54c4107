"""`rec export`: static Paddle Inference models of the towers and the CTR model, verified
before they are written; export.json; the README's snippet; the ONNX path's error without
paddle2onnx."""

import builtins
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, rec, run_stages

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """Synthetic MovieLens, a default two-tower model, its features, a CTR model, exported."""
    return run_stages(tmp_path_factory.mktemp("export"),
                      ["download", "--dataset", "synthetic", "--users", "300", "--movies", "200",
                       "--ratings", "24000"], ["preprocess", "--dataset", "synthetic"],
                      ["train", "--epochs", "2"], ["save-features"],
                      ["ctr-train", "--model", "wide_deep", "--epochs", "1", "--batch-size", "1024"],
                      ["export", "--format", "json"])


@pytest.fixture
def copy(world, tmp_path) -> Path:
    shutil.copytree(world, tmp_path / "w")
    return tmp_path / "w"


def predictor(folder: Path, name: str):
    from paddle import inference

    spec = json.loads((folder / "export.json").read_text())
    files = spec["models"][name]["files"]
    config = inference.Config(str(folder / files["model"]), str(folder / files["params"]))
    config.disable_glog_info()
    return inference.create_predictor(config)


def run(p, *rows) -> np.ndarray:
    for name, row in zip(p.get_input_names(), rows):
        handle = p.get_input_handle(name)
        handle.reshape(row.shape)
        handle.copy_from_cpu(np.ascontiguousarray(row))
    p.run()
    return p.get_output_handle(p.get_output_names()[0]).copy_to_cpu()


def test_export_writes_the_models_and_describes_them(world):
    folder = world / "output" / "export"
    spec = json.loads((folder / "export.json").read_text())
    assert spec["format"] == "paddle" and set(spec["models"]) == {"user_tower", "movie_tower", "ctr"}
    for name, model in spec["models"].items():
        assert {"files", "inputs", "outputs", "verified"} <= set(model), name
        assert set(model["files"]) == {"model", "params"}
        for path in model["files"].values():
            assert (folder / path).is_file() and path.startswith(name + "/")
        assert all(i["shape"][0] is None and {"name", "dtype", "shape"} <= set(i)
                   for i in model["inputs"])
        assert model["outputs"][0]["shape"][0] is None
        assert max(model["verified"]["max_abs_diff"].values()) <= TOLERANCE
    user, movie = spec["models"]["user_tower"], spec["models"]["movie_tower"]
    assert [i["name"] for i in user["inputs"]] == ["demographics", "watched", "rated"]
    assert [i["dtype"] for i in user["inputs"]] == ["int64", "float32", "float32"]
    assert [i["name"] for i in movie["inputs"]] == ["movie_ids", "genres", "titles"]
    assert set(user["verified"]["max_abs_diff"]) == {"the trained model", "usr_feat.pkl"}
    assert set(movie["verified"]["max_abs_diff"]) == {"the trained model", "mov_feat.pkl"}
    ctr_inputs = [i["name"] for i in spec["models"]["ctr"]["inputs"]]
    assert ctr_inputs[:2] == ["ids", "weights"] and not any("label" in n for n in ctr_inputs)
    scoring = json.loads((world / "output" / "features" / "scoring.json").read_text())
    for key in ("match", "split", "offset", "like", "clip"):
        assert spec["scoring"][key] == scoring[key], key
    assert spec["scoring"]["formulas"] and "run_id" not in spec["scoring"]


def test_the_export_is_one_sealed_unit(world, copy):
    """unit.json lists every file of output/export, those in the model folders too, so a
    server can check it took one export whole (rec.storage.unit.read)."""
    from rec.errors import UsageError
    from rec.storage import unit

    folder = world / "output" / "export"
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    record = json.loads((folder / "unit.json").read_text())
    assert sorted(record["sha256"]) == sorted(record["bytes"]) == [f for f in files
                                                                   if f != "unit.json"]
    assert "user_tower/" + Path(json.loads((folder / "export.json").read_text())
                                ["models"]["user_tower"]["files"]["params"]).name in record["sha256"]
    assert unit.read(folder, "rec export", lambda s: s.read_bytes("export.json")) == \
        (folder / "export.json").read_bytes()
    params = copy / "output" / "export" / "ctr" / "model.pdiparams"
    data = bytearray(params.read_bytes())
    data[-1] ^= 1  # the same size, another weight: as if copied from another export
    params.write_bytes(bytes(data))
    with pytest.raises(UsageError, match=r"ctr/model.pdiparams is not the one written with the "
                                         r"rest\): run `rec export` again"):
        unit.read(copy / "output" / "export", "rec export", lambda s: s.read_bytes("export.json"))


def test_exported_towers_reproduce_the_saved_vectors(world):
    from rec.datasets.contract import load_dataset
    from rec.paths import Paths
    from rec.twotower.features import load_features
    from rec.twotower.recall_rank import Histories

    paths = Paths(world / "data", world / "output")
    ds, features = load_dataset(paths), load_features(paths.features_dir)
    folder = paths.output_dir / "export"
    movies = run(predictor(folder, "movie_tower"), np.arange(ds.n_movies, dtype=np.int64),
                 ds.movie_genres.astype(np.int64), ds.movie_titles.astype(np.int64))
    row = features.movie_row()
    expected = features.movies[[row[str(m)] for m in ds.vocab.movie_ids]]
    assert np.abs(movies - expected).max() <= TOLERANCE
    hist = Histories(ds, features.scoring["offset"])
    row = features.user_row()
    tower = predictor(folder, "user_tower")
    for users in (np.arange(64), np.arange(ds.n_users - 1, ds.n_users)):  # any batch size
        vectors = run(tower, *[t.numpy() for t in hist.inputs(users)])
        expected = features.users[[row[str(u)] for u in np.asarray(ds.vocab.user_ids)[users]]]
        assert vectors.shape == expected.shape
        assert np.abs(vectors - expected).max() <= TOLERANCE


def readme_snippet() -> str:
    text = (ROOT / "README.md").read_text()
    return re.search(r"<!-- export-snippet -->\n```python\n(.*?)```", text, re.S).group(1)


def test_readme_snippet_scores_without_rec(world, monkeypatch):
    """The README's Paddle Inference snippet runs as written, and its order is
    rec.scoring's for the same vectors, the movies the new user rated left out."""
    from rec.scoring import score

    snippet = readme_snippet()
    assert len(snippet.strip().splitlines()) <= 14
    monkeypatch.chdir(world)
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    u, m, order = namespace["u"], namespace["m"], namespace["order"]
    spec = json.loads((world / "output" / "export" / "export.json").read_text())
    expected = score(u, m, spec["scoring"])
    assert np.isneginf(order[0, :5]).all() and np.isfinite(order[0, 5:]).all()
    assert np.abs(order[0, 5:] - expected[0, 5:]).max() <= 1e-4


def test_readme_snippet_prints_its_list_alone_without_the_rated_movies(world):
    """Run as a user would (`python snippet.py`): stdout is the ten movie indices, none of
    the five the new user rated; stderr is empty (no paddle import note, no Paddle
    Inference log line: they are C++ writes, which only a real process shows)."""
    proc = subprocess.run([sys.executable, "-c", readme_snippet()], cwd=world,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr[-3000:]
    printed = [int(x) for x in proc.stdout.strip().strip("[]").split()]
    assert len(printed) == 10 and not set(printed) & {0, 1, 2, 3, 4}, proc.stdout


def rec_process(root: Path, *args: str) -> subprocess.CompletedProcess:
    """`rec ARGS` in a process of its own: paddle's C++ logs reach its real stderr."""
    return subprocess.run([sys.executable, "-m", "rec", "--data-dir", str(root / "data"),
                           "--output-dir", str(root / "output"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


ONNX = all(importlib.util.find_spec(m) for m in ("paddle2onnx", "onnxruntime"))


@pytest.mark.parametrize("to", ["paddle", pytest.param("onnx", marks=pytest.mark.skipif(
    not ONNX, reason="paddle2onnx / onnxruntime not installed (pip install -e '.[onnx]')"))])
def test_export_prints_its_own_line_alone(copy, to):
    """No line from paddle, paddle2onnx, Polygraphy or onnxruntime (glog, PIR passes,
    temporary folders): the command's one line on stderr, its result on stdout; -v shows
    the libraries' logs."""
    result = rec_process(copy, "export", "--to", to, "--format", "json")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr == ("exported user_tower, movie_tower, ctr to "
                             f"{copy / 'output' / 'export'}, each verified to 1e-5\n")
    assert json.loads(result.stdout)["to"] == to
    if to == "onnx":
        loud = rec_process(copy, "-v", "export", "--to", "onnx", "--format", "json")
        assert loud.returncode == 0 and "[Paddle2ONNX]" in loud.stderr
        assert json.loads(loud.stdout)["to"] == "onnx"  # logs never reach stdout


def test_a_mismatch_exits_1_and_keeps_the_previous_export(copy):
    """A model retrained after save-features: the export would not reproduce the saved
    vectors, so nothing is written."""
    folder = copy / "output" / "export"
    before = (folder / "export.json").read_bytes()
    assert rec(copy, "train", "--epochs", "1", "--seed", "7").exit_code == 0
    result = rec(copy, "export")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: export ") and "feat.pkl" in lines[-1], result.stderr
    assert "nothing written" in lines[-1]
    assert (folder / "export.json").read_bytes() == before
    assert not [p for p in (copy / "output").iterdir() if p.name.startswith(".export")]


def test_a_tampered_runtime_output_exits_1(copy, monkeypatch):
    from rec.engine import inference as serving

    real = serving.run_paddle

    def tampered(files, rows):
        out, names, outputs = real(files, rows)
        return out + np.float32(1e-3), names, outputs

    monkeypatch.setattr(serving, "run_paddle", tampered)
    shutil.rmtree(copy / "output" / "export")
    result = rec(copy, "export")
    assert result.exit_code == 1 and "differs from the trained model" in result.stderr
    assert not (copy / "output" / "export").exists()


def test_onnx_without_paddle2onnx_is_one_line(copy, monkeypatch):
    real_import = builtins.__import__

    def no_paddle2onnx(name, *args, **kwargs):
        if name.split(".")[0] in ("paddle2onnx", "onnxruntime"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_paddle2onnx)
    before = (copy / "output" / "export" / "export.json").read_bytes()
    result = rec(copy, "export", "--to", "onnx")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "pip install" in lines[0]
    assert "paddle2onnx" in lines[0]
    assert (copy / "output" / "export" / "export.json").read_bytes() == before


def test_unknown_target_is_a_usage_error(world):
    result = rec(world, "export", "--to", "tflite")
    assert result.exit_code == 2 and "--to must be one of paddle, onnx" in result.stderr


@pytest.mark.skipif(not ONNX, reason="paddle2onnx / onnxruntime not installed "
                    "(pip install -e '.[onnx]')")
def test_onnx_export_is_verified_with_onnxruntime(copy):
    result = rec(copy, "export", "--to", "onnx", "--format", "json")
    assert result.exit_code == 0, result.output
    spec = json.loads((copy / "output" / "export" / "export.json").read_text())
    assert spec["format"] == "onnx"
    for name, model in spec["models"].items():
        assert model["files"] == {"model": f"{name}/model.onnx"}
        assert model["verified"]["runtime"] == "onnxruntime"
        assert max(model["verified"]["max_abs_diff"].values()) <= TOLERANCE
    assert json.loads(result.stdout)["to"] == "onnx"
    assert os.path.isfile(copy / "output" / "export" / "user_tower" / "model.onnx")


def test_a_criteo_ctr_model_exports_with_its_fields(copy):
    from rec.datasets import criteo_synthetic

    data = copy / "train.txt"
    criteo_synthetic.generate(data, criteo_synthetic.SyntheticCriteoSpec(lines=3000, seed=5))
    result = rec(copy, "ctr-train", "--data", "criteo", "--input", str(data), "--epochs", "1")
    assert result.exit_code == 0, result.output
    assert rec(copy, "export").exit_code == 0
    spec = json.loads((copy / "output" / "export" / "export.json").read_text())
    ctr = spec["models"]["ctr"]
    assert [(i["name"], i["dtype"]) for i in ctr["inputs"]] == [("ids", "int64"),
                                                                 ("dense", "float32")]
    assert ctr["verified"]["max_abs_diff"]["the trained model"] <= TOLERANCE
