"""Options checked before the work (`rec pipeline` checks what it passes on before its first
stage), and a `rec status` that tells the truth: every file of an artifact it calls fresh,
an export row, and the stage that is running now."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import (SMALL, SMALL_WORLD, copy_world, one_line_error, rec, reseal,
                      run_stages)


# --- rec pipeline: every option before the first stage ---------------------------------------


@pytest.fixture
def stages_run(monkeypatch) -> list:
    """The stages `rec pipeline` would start (none is started)."""
    from rec.stages import pipeline

    calls = []
    monkeypatch.setattr(pipeline, "run_stage", lambda global_args, args, **kw: calls.append(args))
    return calls


@pytest.mark.parametrize("args,message", [
    (["--user", "abc"], "--user 'abc' is not a user id (a whole number)"),
    (["--device", "tpu"], "--device must be cpu, gpu or gpu:N (got 'tpu')"),
    (["--source", "/no/such/file.zip", "--dataset", "ml-1m"],
     "--source /no/such/file.zip does not exist"),
    # no --dataset: the one the source holds, as download takes it (ml-1m by default)
    (["--source", "x.zip"], "--source x.zip does not exist"),
    (["--source", "x.zip", "--dataset", "synthetic"],
     "--source does not apply to --dataset synthetic"),
    (["--split", "later"], "unknown --split 'later': choose random, time, time-user, users"),
    (["--match", "dots"], "unknown --match 'dots': choose softmax, dot, cosine"),
    (["--dataset", "ml-2m"], None),
])
def test_pipeline_checks_every_option_it_passes_on_before_the_first_stage(
        tmp_path, stages_run, args, message):
    result = rec(tmp_path, "pipeline", *args)
    error = one_line_error(result, 2)
    if message is not None:
        assert error == f"error: {message}"
    assert stages_run == [] and not (tmp_path / "data").exists()


def test_pipeline_refuses_gpu_on_a_cpu_build_before_the_first_stage(tmp_path, stages_run,
                                                                    monkeypatch):
    from rec import build_info

    monkeypatch.setattr(build_info, "installed_versions", lambda d: {"paddlepaddle": "3.3.1"})
    error = one_line_error(rec(tmp_path, "pipeline", "--device", "gpu:1"), 2)
    assert error == f"error: {build_info.GPU_HELP}"
    assert stages_run == []


def test_pipeline_checks_each_stage_command_line_with_that_stages_own_parser(
        tmp_path, stages_run, monkeypatch):
    """A value the pipeline's parser lets through but a stage's would refuse stops before
    anything runs, in that stage's words."""
    from rec.stages import pipeline

    real = pipeline.stage_commands
    monkeypatch.setattr(pipeline, "stage_commands", lambda *a: [
        *real(*a)[:2], ["train", "--lr", "fast"], *real(*a)[3:]])
    error = one_line_error(rec(tmp_path, "pipeline"), 2)
    assert error == ("error: rec train: Invalid value for '--lr': Input should be a valid "
                     "number, unable to parse string as a number (nothing was run)")
    assert stages_run == []


def test_pipeline_with_good_options_runs_every_stage_in_order(tmp_path, stages_run):
    result = rec(tmp_path, "pipeline", "--user", "7", "--seed", "3", "--epochs", "2",
                 "--split", "time", "--top", "5")
    assert result.exit_code == 0, result.output
    assert [args[0] for args in stages_run] == ["download", "preprocess", "train",
                                                "save-features", "ctr-train", "evaluate",
                                                "recommend"]
    assert stages_run[-1] == ["recommend", "7", "--top", "5"]


def test_pipeline_passes_a_negative_user_id_as_an_id(tmp_path, stages_run):
    assert rec(tmp_path, "pipeline", "--user", "-5").exit_code == 0
    assert stages_run[-1] == ["recommend", "--top", "10", "--", "-5"]


# --- rec status --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("status")
    return run_stages(root, *SMALL_WORLD, ["export"])


def states(root: Path) -> dict[str, str]:
    result = rec(root, "status", "--format", "json")
    assert result.exit_code == 0, result.output
    return {row["stage"]: row["state"] for row in map(json.loads, result.stdout.splitlines())}


def test_status_shows_the_changed_params_and_json_all_of_them(tmp_path):
    run_stages(tmp_path, ["download", "--dataset", "synthetic", *SMALL],
               ["preprocess", "--seed", "7"])
    result = rec(tmp_path, "status", "--format", "tsv")
    assert result.exit_code == 0, result.output
    params = {row.split("\t")[0]: row.split("\t")[3] for row in result.stdout.splitlines()[1:]}
    assert params == {"download": "dataset=synthetic users=80 movies=60 ratings=2000",
                      "preprocess": "seed=7", "train": "", "evaluate": "",
                      "save-features": "", "ctr-train": "", "export": ""}
    result = rec(tmp_path, "status", "--format", "json")
    rows = {row["stage"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert rows["download"]["params"] == {"dataset": "synthetic", "source": None, "force": False,
                                          "users": 80, "movies": 60, "ratings": 2000, "seed": 42}
    assert rows["preprocess"]["params"] == {"dataset": "synthetic", "split": "random",
                                            "val_ratio": 0.1, "seed": 7}
    assert rows["train"]["params"] == {}


def status_params(root: Path) -> dict[str, str]:
    result = rec(root, "status", "--format", "tsv")
    assert result.exit_code == 0, result.output
    return {row.split("\t")[0]: row.split("\t")[3] for row in result.stdout.splitlines()[1:]}


def test_status_shows_synthetic_data_s_seed_only_when_given(tmp_path):
    """--seed left out is synthetic data's 42 (JSON says so), no change; --seed 7 is one."""
    changed = "dataset=synthetic users=80 movies=60 ratings=2000"
    run_stages(tmp_path, ["download", "--dataset", "synthetic", *SMALL])
    assert status_params(tmp_path)["download"] == changed
    run_stages(tmp_path, ["download", "--dataset", "synthetic", *SMALL, "--seed", "7"])
    assert status_params(tmp_path)["download"] == changed + " seed=7"
    run_stages(tmp_path, ["download", "--dataset", "synthetic", *SMALL, "--seed", "42"])
    assert status_params(tmp_path)["download"] == changed
    result = rec(tmp_path, "status", "--format", "json")
    rows = {row["stage"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert rows["download"]["params"]["seed"] == 42


def test_status_shows_no_change_for_options_left_to_the_stage(exported, tmp_path):
    """preprocess's dataset (the one downloaded), train's auto options (its --match's),
    ctr-train's --data and --model (movielens, rank): left out, they changed nothing."""
    root = run_stages(copy_world(exported, tmp_path), ["ctr-train", "--epochs", "1"])
    assert status_params(root) == {
        "download": "dataset=synthetic users=80 movies=60 ratings=2000", "preprocess": "",
        "train": "epochs=1", "evaluate": "", "save-features": "", "ctr-train": "epochs=1",
        "export": ""}
    run_stages(root, ["train", "--epochs", "1", "--lr", "0.02"], ["train", "--resume",
                                                                   "--epochs", "2"])
    assert status_params(root)["train"] == "epochs=2 lr=0.02"  # the checkpoint's: a change


def test_status_has_a_row_for_export_even_before_it_ran(tmp_path):
    assert states(tmp_path) == {name: "not run" for name in (
        "download", "preprocess", "train", "save-features", "ctr-train", "evaluate", "export")}


def test_status_lists_the_stages_in_the_order_they_run(tmp_path):
    r = rec(tmp_path, "status", "--format", "json")
    assert [json.loads(line)["stage"] for line in r.stdout.splitlines()] == [
        "download", "preprocess", "train", "save-features", "ctr-train", "evaluate", "export"]


def test_status_checks_every_file_of_the_export_it_calls_fresh(exported, tmp_path):
    root = copy_world(exported, tmp_path)
    assert states(root) == {"download": "fresh", "preprocess": "fresh", "train": "fresh",
                            "evaluate": "not run", "save-features": "fresh",
                            "ctr-train": "not run", "export": "fresh"}
    export = root / "output" / "export"
    weights = sorted(p.relative_to(export) for p in export.rglob("*.pdiparams"))
    assert [str(p) for p in weights] == ["movie_tower/model.pdiparams",
                                         "user_tower/model.pdiparams"]
    (export / weights[0]).unlink()
    assert states(root)["export"] == "missing"  # a file it wrote is gone
    root = copy_world(exported, tmp_path / "again")
    (root / "output" / "export" / weights[1]).write_bytes(b"")
    assert states(root)["export"] == "modified"


def test_status_compares_a_folder_by_its_files_contents_not_their_times(exported, tmp_path):
    """A `touch` (or a copy without its times) of a file in the downloaded data or the
    export left them 'modified' and preprocess 'stale' (a newcomer reran everything): a
    folder whose files' stats changed is hashed, as a file is. Changed bytes still show."""
    root = copy_world(exported, tmp_path / "copy")  # its data is the world's, outside it
    run_stages(tmp_path, ["download", "--dataset", "synthetic", *SMALL],
               ["preprocess", "--seed", "7"])
    raw = tmp_path / "data" / "synthetic" / "ratings.dat"
    weights = next((root / "output" / "export").rglob("*.pdiparams"))
    for path in (raw, weights):
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5 * 10**9))
    for _ in range(2):  # and again, with the stats as they are now
        assert states(root)["export"] == "fresh"
        assert states(tmp_path)["download"] == states(tmp_path)["preprocess"] == "fresh"
    raw.write_bytes(raw.read_bytes().replace(b"1", b"2", 1))
    weights.write_bytes(weights.read_bytes()[::-1])
    assert states(root)["export"] == "modified"
    assert states(tmp_path)["download"] == "modified"
    assert states(tmp_path)["preprocess"] == "stale"


def test_a_folder_replaced_after_it_was_read_is_stale_whatever_its_stats(tmp_path):
    """preprocess records the data folder's fingerprint as it read it; when another output
    folder's download replaced it before the record, the stats taken then are the new
    folder's and must not vouch for the version read."""
    from rec.paths import Paths
    from rec.storage import manifest

    paths = Paths(tmp_path / "data", tmp_path / "output")
    folder = tmp_path / "data" / "ml-1m"
    folder.mkdir(parents=True)
    (folder / "ratings.dat").write_text("1::1::5::1\n")
    read_as = manifest.fingerprint(folder)
    (folder / "ratings.dat").write_text("1::2::5::1\n")  # replaced before the record
    manifest.record(paths, "preprocess", {}, inputs=[folder], outputs=[],
                    read_as={folder: read_as})
    entry = manifest.read(paths)[0]["stages"]["preprocess"]
    assert manifest.stage_state(entry) == "stale"
    manifest.record(paths, "preprocess", {}, inputs=[folder], outputs=[])  # read as it is
    entry = manifest.read(paths)[0]["stages"]["preprocess"]
    assert manifest.stage_state(entry) == "fresh" and str(folder) in entry["stats"]


def _reseal_record(best: Path, change) -> None:
    """Edit the model's record.json by `change(entry)` and seal the unit again, as a
    future rec or a hand might."""
    record = json.loads((best / "record.json").read_text())
    change(record)
    (best / "record.json").write_text(json.dumps(record))
    reseal(best)


def test_a_units_record_is_taken_only_when_the_manifest_does_not_describe_the_unit(
        exported, tmp_path):
    """The manifest's entry of another run that records the model as it is (an older rec
    that republished it, copying its record along) stays; a record the manifest could not
    read (a fingerprint too long, a path outside the output folder) is never written into
    it; a record taken gets its inputs' stats, each hashed once."""
    root = copy_world(exported, tmp_path)
    best, path = root / "output" / "model" / "best", root / "output" / "manifest.json"
    obj = json.loads(path.read_text())
    obj["stages"]["train"]["run"] = "an-older-rec"
    obj["stages"]["train"]["params"]["epochs"] = 99
    path.write_text(json.dumps(obj))
    r = rec(root, "status", "--format", "json")
    rows = {row["stage"]: row for row in map(json.loads, r.stdout.splitlines())}
    assert rows["train"]["params"]["epochs"] == 99 and rows["train"]["state"] == "fresh"
    assert "put back" not in rec(root, "evaluate").stderr
    del obj["stages"]["train"]  # the record lost: the model's is taken, not a bad one
    path.write_text(json.dumps(obj))
    for bad in ({"inputs": {str(root / "output" / "x"): "f" * 80}},
                {"inputs": {"/etc/passwd": "abc"}}):
        _reseal_record(best, lambda e, bad=bad: e.update(bad))
        r = rec(root, "evaluate")
        assert r.exit_code == 0 and "put back" not in r.stderr and "unreadable" not in r.stderr
        assert "train" not in json.loads(path.read_text())["stages"]
    copy = copy_world(exported, tmp_path / "fresh")
    obj = json.loads((copy / "output" / "manifest.json").read_text())
    del obj["stages"]["train"]
    (copy / "output" / "manifest.json").write_text(json.dumps(obj))
    assert "put back from it" in rec(copy, "evaluate").stderr
    entry = json.loads((copy / "output" / "manifest.json").read_text())["stages"]["train"]
    assert set(entry["inputs"]) <= set(entry["stats"])  # verified: status hashes none


def test_status_reads_an_older_recs_folder_fingerprints(exported, tmp_path):
    """A manifest from before the content fingerprints: a folder recorded by its files'
    stats alone, and no stats entry for it, is fresh while those stats are unchanged."""
    from rec.storage.manifest import folder_stats

    root = copy_world(exported, tmp_path)
    manifest = root / "output" / "manifest.json"
    obj = json.loads(manifest.read_text())
    for entry in obj["stages"].values():
        for key in ("inputs", "outputs"):
            for path in entry[key]:
                if Path(path).is_dir():
                    entry[key][path] = folder_stats(Path(path))
                    entry["stats"].pop(path, None)
    manifest.write_text(json.dumps(obj))
    assert states(root)["export"] == states(root)["download"] == "fresh"
    weights = next((root / "output" / "export").rglob("*.pdiparams"))
    os.utime(weights, ns=(0, 0))  # what an older rec could tell: its stats changed
    assert states(root)["export"] == "modified"


@pytest.mark.parametrize("name,state", [("best/metrics.json", "missing"),  # of the seal
                                        ("history.json", "missing"),  # a recorded file
                                        ("best/config.json", "missing")])
def test_status_checks_every_file_of_the_model_it_calls_fresh(exported, tmp_path, name,
                                                              state):
    root = copy_world(exported, tmp_path)
    (root / "output" / "model" / name).unlink()
    assert states(root)["train"] == state


def test_what_reads_an_edited_unit_is_stale(exported, tmp_path):
    """A hand-edited file of output/features makes save-features 'modified' and what reads
    the features as a unit 'stale' (evaluate: its record names the unit's seal, unit.json,
    which the edit left as it was); running save-features again makes it right."""
    root = copy_world(exported, tmp_path)
    assert rec(root, "evaluate").exit_code == 0
    scoring = root / "output" / "features" / "scoring.json"
    scoring.write_text(scoring.read_text().replace('"clip"', '"clip" ', 1))
    assert {k: v for k, v in states(root).items() if k in ("train", "save-features", "evaluate")} \
        == {"train": "fresh", "save-features": "modified", "evaluate": "stale"}
    assert rec(root, "save-features").exit_code == 0
    assert {k: v for k, v in states(root).items() if k in ("save-features", "evaluate")} \
        == {"save-features": "fresh", "evaluate": "stale"}  # it evaluated the old unit
    root = copy_world(exported, tmp_path / "gone")
    assert rec(root, "evaluate").exit_code == 0
    (root / "output" / "features" / "scoring.json").unlink()  # missing: stale all the same
    assert {k: v for k, v in states(root).items() if k in ("save-features", "evaluate")} \
        == {"save-features": "missing", "evaluate": "stale"}
    # the model: save-features and export record its weights alone, and read it whole
    root = copy_world(exported, tmp_path / "model")
    config = root / "output" / "model" / "best" / "config.json"
    config.write_text(config.read_text() + " ")
    assert {k: v for k, v in states(root).items() if k in ("train", "save-features", "export")} \
        == {"train": "modified", "save-features": "stale", "export": "stale"}


def test_status_says_missing_when_what_a_stage_wrote_is_gone(exported, tmp_path):
    """A newcomer removed output/export: 'modified' read as if it had been edited."""
    import shutil

    root = copy_world(exported, tmp_path)
    shutil.rmtree(root / "output" / "export")
    assert states(root)["export"] == "missing"
    assert states(root)["save-features"] == "fresh"
    # a file of a sealed folder (output/model/best) gone: missing too, not 'modified' (an
    # adversarial trial's find); a file of it changed: modified
    config = root / "output" / "model" / "best" / "config.json"
    config.write_text(config.read_text() + " ")
    assert states(root)["train"] == "modified"
    (root / "output" / "model" / "best" / "model.pdparams").unlink()
    assert states(root)["train"] == "missing"


@pytest.mark.parametrize("stage", ["ctr-train", "train", "export", "download"])
def test_status_reports_the_stage_running_now(exported, tmp_path, stage):
    """The lock's holder, as a running command names itself (rec.stages.stage)."""
    from rec.storage import lock

    root = copy_world(exported, tmp_path)
    with lock.hold(root / "output", f"rec {stage}"):
        result = rec(root, "status", "--format", "json")
    rows = {r["stage"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert rows[stage]["state"] == "running" and rows[stage]["when"] == f"now (pid {os.getpid()})"
    assert [r["state"] for n, r in rows.items() if n != stage].count("running") == 0
    assert states(root)[stage] != "running"  # over once the lock is dropped


def test_status_names_a_holder_that_is_no_stage(exported, tmp_path):
    from rec.storage import lock

    root = copy_world(exported, tmp_path)
    with lock.hold(root / "output", "another tool"):
        result = rec(root, "status", "--format", "json")
    assert result.exit_code == 0
    assert f"{root / 'output'} is in use by `another tool (pid {os.getpid()})`" in result.stderr
    assert "running" not in result.stdout


def test_evaluate_before_the_rank_stage_is_stale_once_it_is_fitted(exported, tmp_path):
    """evaluate run before save-features and ctr-train left the channels and the ranked
    list out: status calls it stale once they exist, and fresh again after evaluate."""
    root = copy_world(exported, tmp_path)
    shutil.rmtree(root / "output" / "features")
    assert not (root / "output" / "ctr").exists()
    assert rec(root, "evaluate").exit_code == 0
    assert states(root)["evaluate"] == "fresh"
    assert rec(root, "save-features").exit_code == 0
    assert states(root)["evaluate"] == "stale"
    assert rec(root, "evaluate").exit_code == 0
    assert rec(root, "ctr-train", "--data", "movielens").exit_code == 0
    assert states(root)["evaluate"] == "stale"
    assert rec(root, "evaluate").exit_code == 0 and states(root)["evaluate"] == "fresh"


def test_features_from_an_earlier_model_are_named_by_recommend_and_evaluate(exported, tmp_path):
    """`rec train` ran again after save-features: recommend still serves the saved vectors
    (the earlier model's, consistently) and says so on stderr; evaluate leaves the recall
    channels and the ranked list out (they are the earlier model's) with a note, instead of
    mixing them with this model's row; save-features makes both quiet again."""
    root = copy_world(exported, tmp_path)
    before = rec(root, "recommend", "1", "--top", "3", "--format", "tsv")
    assert before.exit_code == 0 and "another" not in before.stderr
    assert rec(root, "train", "--epochs", "1", "--seed", "5").exit_code == 0
    result = rec(root, "recommend", "1", "--top", "3", "--format", "tsv")
    assert result.exit_code == 0 and result.stdout == before.stdout
    assert ("output/features was saved from another `rec train` run than output/model's "
            "(trained again since?): run `rec save-features`, then `rec ctr-train`; until "
            "then these are that run's recommendations") in result.stderr
    assert rec(root, "evaluate").exit_code == 0
    report = json.loads((root / "output" / "model" / "eval.json").read_text())
    assert not report["ranked"] and "channels" not in report
    assert [n for n in report["notes"] if "not evaluated: output/features was saved from "
            "another `rec train` run" in n]
    assert rec(root, "save-features").exit_code == 0
    assert "another" not in rec(root, "recommend", "1").stderr
    assert rec(root, "evaluate").exit_code == 0
    assert "channels" in json.loads((root / "output" / "model" / "eval.json").read_text())
