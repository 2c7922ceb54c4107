"""The registry of model kinds (rec.twotower.kinds): the one place a kind is named, its
declarations complete, an unknown --match one error line that names the kinds."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from conftest import ROOT, one_line_error, rec
from rec.twotower import kinds
from rec.twotower.kind import Kind

# where a kind's name may be written: the networks (rec/models: a network knows its match),
# the scoring.json format's formulas (rec/scoring.py) and the modules that declare kinds
NAMED_IN = ("rec/models/", "rec/scoring.py",
            *sorted({str(Path(inspect.getfile(type(k))).relative_to(ROOT))
                     for k in kinds.KINDS.values()}))


def kind_literals(path) -> list[str]:
    """Each string literal of `path` that is exactly a kind's name, with its line."""
    return [f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}"
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Constant) and node.value in kinds.KINDS]


def test_kinds_are_named_only_where_they_are_declared():
    assert NAMED_IN[2:] == ("rec/twotower/rating.py", "rec/twotower/recall_rank.py")
    found = [hit for path in sorted((ROOT / "rec").rglob("*.py"))
             if not str(path.relative_to(ROOT)).startswith(NAMED_IN)
             for hit in kind_literals(path)]
    assert found == []  # stages, rank, features, export: they look the kind up


def test_no_stage_branches_on_a_model_class_or_its_methods():
    for path in sorted((ROOT / "rec" / "stages").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        for word in ("isinstance(model", "hasattr(model", "RecallRankTwoTower", "TwoTower(",
                     ".match ==", ".match !=", '"match") =='):
            assert word not in text, f"{path.name}: {word}"


def test_each_kind_is_declared_whole():
    assert list(kinds.KINDS) == ["softmax", "dot", "cosine"]  # --match's order, its help's
    assert kinds.DEFAULT == "softmax"
    for name, kind in kinds.KINDS.items():
        assert isinstance(kind, Kind) and kind.name == name and kind.help
        metric, _, label, state_key = kind.monitor
        assert metric in kind.columns and metric in kind.finite and metric in kind.keys
        assert kind.columns[metric] == label and state_key.startswith("best_")
        assert set(kind.finite) <= set(kind.columns) and kind.formulas and kind.user_inputs
        # every method of the contract is the kind's own, not Kind's NotImplementedError
        for method in ("batch_size", "model_config", "network", "saved_network", "objective",
                       "saved_vectors", "vector_mismatch", "check_scoring", "user_tower"):
            assert getattr(type(kind), method) is not getattr(Kind, method), (name, method)
    assert [k.folds_in for k in kinds.KINDS.values()] == [True, False, False]
    assert [k.recalls for k in kinds.KINDS.values()] == [True, False, False]


@pytest.mark.parametrize("name,n_train,n_users,n_movies,expected", [
    ("softmax", 900_000, 6_040, 3_700, dict(patience=5, lr=1e-2, epochs=20, tower_dim=64,
                                            dropout=0.5, batch_size=512)),
    ("softmax", 900_000, 600, 3_700, dict(batch_size=64)),
    ("softmax", 900_000, 160_000, 62_000, dict(batch_size=128)),  # sampled: at most 128 users
    ("dot", 900_000, 6_040, 3_700, dict(patience=3, lr=5e-3, epochs=10, tower_dim=32,
                                        dropout=0.1, batch_size=8192)),
    ("cosine", 20_000, 600, 3_700, dict(batch_size=256)),
])
def test_auto_options_are_the_kinds(name, n_train, n_users, n_movies, expected):
    from rec.stages.train import TrainParams

    params = TrainParams(match=name)
    kinds.kind(name).resolve_auto(params, n_train, n_users, n_movies)
    assert {k: getattr(params, k) for k in expected} == expected
    given = TrainParams(match=name, epochs=3, lr=0.5, patience=1, tower_dim=8, dropout=0.0,
                        batch_size=7)
    kinds.kind(name).resolve_auto(given, n_train, n_users, n_movies)
    assert (given.epochs, given.lr, given.patience, given.tower_dim, given.dropout,
            given.batch_size) == (3, 0.5, 1, 8, 0.0, 7)  # only what is left at auto


def test_match_help_names_every_kind():
    assert kinds.match_help() == ("softmax (recall + rating head), dot (mean + u.m + biases) "
                                  "or cosine (the course's 5*cos).")
    assert kinds.match_help(described=False) == "softmax, dot or cosine."  # rec pipeline's


def test_an_unknown_match_is_one_line_naming_the_kinds(tmp_path):
    error = one_line_error(rec(tmp_path, "train", "--match", "l2"), 2)
    assert error == "error: unknown --match 'l2': choose softmax, dot, cosine"
    assert not (tmp_path / "output" / "model").exists()
