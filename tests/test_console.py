"""rec.console: results on stdout as table | TSV | JSON lines, everything else on stderr."""

from __future__ import annotations

import json

import pytest

from rec import console, results
from rec.errors import EXIT_USAGE, UsageError

from conftest import rec


@pytest.fixture(autouse=True)
def not_quiet():
    console.set_quiet(False)
    yield
    console.set_quiet(False)


ROWS = [{"rank": 1, "title": "Toy Story (1995)", "score": 4.123456789, "note": None},
        {"rank": 2, "title": "tab\there", "score": 0.00001234, "note": "new\nline"}]
COLUMNS = ["rank", "title", "score", "note"]


def test_tsv(capsys):
    results.emit(ROWS, COLUMNS, "tsv")
    out, err = capsys.readouterr()
    assert err == ""
    assert out.splitlines() == ["rank\ttitle\tscore\tnote",
                                "1\tToy Story (1995)\t4.12346\t",
                                "2\ttab here\t1.234e-05\tnew line"]


def test_tsv_header_even_without_rows(capsys):
    results.emit([], COLUMNS, "tsv")
    assert capsys.readouterr().out == "rank\ttitle\tscore\tnote\n"


def test_json_lines(capsys):
    results.emit(ROWS, COLUMNS, "json")
    out, _ = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows == [dict(r) for r in ROWS]


def test_auto_is_tsv_on_a_pipe(capsys):
    results.emit(ROWS[:1], ["rank"], "auto")  # capsys' stdout is not a terminal
    assert capsys.readouterr().out == "rank\n1\n"


def test_table_goes_to_stdout(capsys):
    results.emit(ROWS[:1], COLUMNS, "table", title="top")
    out, err = capsys.readouterr()
    assert err == "" and "Toy Story (1995)" in out and "top" in out


def test_emit_object(capsys):
    results.emit_object({"users": 5, "rmse": 0.9}, "json")
    assert capsys.readouterr().out == '{"users": 5, "rmse": 0.9}\n'
    results.emit_object({"users": 5, "rmse": 0.9}, "tsv")
    assert capsys.readouterr().out == "key\tvalue\nusers\t5\nrmse\t0.9\n"


def test_bad_format():
    with pytest.raises(UsageError) as info:
        results.resolve_format("yaml")
    assert info.value.exit_code == EXIT_USAGE
    assert str(info.value) == "unknown --format 'yaml': choose one of auto, table, tsv, csv, json"


def test_logs_and_warnings_on_stderr(capsys):
    console.log("working")
    console.warn("careful")
    console.error_line("broken")
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == ["working", "warning: careful", "error: broken"]
    console.set_quiet(True)
    console.log("working")
    console.warn("careful")  # warnings are never silenced
    assert capsys.readouterr().err == "warning: careful\n"


# --- steps: progress of work that shows nothing else ----------------------------------------


class FakeBar:
    """What rich's Progress is asked: the total, then each update."""

    def __init__(self, calls):
        self.calls = calls

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_task(self, description, total):
        self.calls.append(("total", total))
        return 0

    def update(self, task, **changes):
        self.calls.append(changes)


def test_steps_move_the_bar_by_what_each_step_costs(monkeypatch):
    calls = []
    monkeypatch.setattr(console, "progress", lambda *a, **k: FakeBar(calls))
    with console.steps("evaluate", {"load": 2, "rank": 6, "ease": 2}) as step:
        step("load")
        step("rank")
        step("ease")
    assert calls == [("total", 10),
                     {"completed": 0, "description": "evaluate: load"},
                     {"completed": 2, "description": "evaluate: rank"},
                     {"completed": 8, "description": "evaluate: ease"}]
    calls.clear()
    with console.steps("evaluate", {"load": 2, "rank": 6}) as step:  # another kind of work
        step("load")
        step("held-out users", plan={"held-out users": 3})
    assert calls[-2:] == [{"total": 5}, {"completed": 2, "description": "evaluate: held-out users"}]


def test_steps_show_nothing_off_a_terminal(capsys):
    with console.steps("evaluate", {"load": 1}) as step:
        step("load")
    assert capsys.readouterr() == ("", "")


def recording_steps(monkeypatch) -> list:
    """rec evaluate's steps as it calls them: [(name, plan), ...]."""
    import contextlib

    from rec.stages import evaluate

    called = []

    @contextlib.contextmanager
    def recorder(title, costs):
        called.append(("plan", dict(costs)))
        yield lambda name, plan=None: called.append((name, plan))

    monkeypatch.setattr(evaluate, "steps", recorder)
    return called


def test_evaluate_goes_through_its_steps_in_order(tmp_path, monkeypatch):
    from conftest import SMALL_WORLD, run_stages

    from rec.rank.evaluation import STEPS

    world = run_stages(tmp_path, *SMALL_WORLD[:3])
    called = recording_steps(monkeypatch)
    assert rec(world, "evaluate").exit_code == 0
    assert called == [("plan", STEPS)] + [(name, None) for name in STEPS]
